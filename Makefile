# `make demo` and `make test` are the two set-up commands of the README.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/demo

.PHONY: demo test test-slow install benchmark clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) bin/train --workdir=$(WORKDIR)
	@echo "Outputs: $(WORKDIR)/metrics.json, $(WORKDIR)/reconstructions.png, TensorBoard logs in $(WORKDIR)/tensorboard"

test: install
	$(PY) -m pytest -q -m "not slow" tests

test-slow: install
	$(PY) -m pytest -q -m slow tests

benchmark: install
	$(PY) bin/benchmark all

clean:
	rm -rf $(VENV) runs
