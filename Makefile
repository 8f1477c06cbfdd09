# `make demo` and `make test` are the two set-up commands of the README.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/demo
# `make demo SEED=1`: the demo with another seed (its noise, initialisation and data order).
SEED ?= 0
# Test files run in this many processes (pytest-xdist, one file per process at a time, so
# module fixtures are built once). Much of a test's time is single-threaded Python and
# tracing, so 2 processes keep 2 cores busier than one.
TEST_WORKERS ?= 2

.PHONY: demo test test-processes test-slow install benchmark clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) bin/train --workdir=$(WORKDIR) --config.seed=$(SEED)
	@echo "Outputs: $(WORKDIR)/metrics.json, $(WORKDIR)/reconstructions.png, TensorBoard logs in $(WORKDIR)/tensorboard"

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow and not processes" tests

# The end-to-end checks that start TensorFlow processes of their own (two workers, the
# mirrored and XLA processes, bin/* runs, TF Serving's loaders, the browser): CI runs them
# after `make test`.
test-processes: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "processes and not slow" tests

test-slow: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m slow tests

benchmark: install
	$(PY) bin/benchmark all

clean:
	rm -rf $(VENV) runs
