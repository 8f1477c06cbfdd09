"""`training.train` end to end on tiny models: outputs, resume, bad input, NaN guard."""

import contextlib
import copy
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
import warnings

import pytest

from logit_inversion import training
from logit_inversion.data import pipeline
from logit_inversion.models import losses
from logit_inversion.models.inverter import LogitInverter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_classifier_path, shapes_data_dir):
    """The tiny config's finished run (4 steps, 3 standing-statistics batches), trained once
    for every test that starts from one, with what it did on the way: `calls` (standing
    statistics and evaluations, in order), `seeds` (its training streams), `loads` (every
    SavedModel it loaded), `printed` (its stdout) and `warnings`. Tests that write into
    `workdir` take their own copy (`_copy`).

    The run also takes every other path that reads the frozen classifier (the pre-flight
    check, the feature term at the logits), so that `loads` shows whether each loads it
    anew."""
    import tensorflow as tf
    from logit_inversion import testing
    workdir = str(tmp_path_factory.mktemp("trained") / "run")
    config = testing.tiny_config(tiny_classifier_path, shapes_data_dir,
                                 standing_stats_batches=3, feature_weight=1.0,
                                 feature_layer="logits")
    config.preflight.enabled = True
    config.preflight.accept_risk = True   # the tiny random classifier fails the check
    config.preflight.num_examples = 16
    printed, loads, load = io.StringIO(), [], tf.saved_model.load
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        calls, seeds = _record_calls(patch), testing.record_stream_seeds(patch)
        patch.setattr(tf.saved_model, "load",
                      lambda path, *a, **k: loads.append(str(path)) or load(path, *a, **k))
        metrics = training.train(config, workdir, verbose=0)
    return types.SimpleNamespace(workdir=workdir, config=config, metrics=metrics, calls=calls,
                                 seeds=seeds, loads=loads, printed=printed.getvalue(),
                                 warnings=caught)


def _copy(workdir, tmp_path):
    return shutil.copytree(workdir, str(tmp_path / "run"))


def _checkpoint_files(workdir):
    d = os.path.join(workdir, "checkpoints")
    return {f: os.path.getmtime(os.path.join(d, f)) for f in sorted(os.listdir(d))}


def _record_calls(monkeypatch):
    """Records standing-statistics passes (batches asked, used) and evaluations, in order."""
    calls = []
    accumulate, evaluate = LogitInverter.accumulate_standing_stats, LogitInverter.evaluate

    def standing(self, images, num_batches):
        used = accumulate(self, images, num_batches)
        calls.append(("standing", num_batches, used))
        return used

    def evaluating(self, *args, **kwargs):
        calls.append(("evaluate",))
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(LogitInverter, "accumulate_standing_stats", standing)
    monkeypatch.setattr(LogitInverter, "evaluate", evaluating)
    return calls


def _held_out_tags(workdir):
    """The `held_out/` scalar tags in a run's TensorBoard events."""
    import tensorflow as tf
    tags = set()
    for path in tf.io.gfile.glob(os.path.join(workdir, "tensorboard", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value if v.tag.startswith("held_out/"))
    return tags


def _check_per_class_report(metrics, printed, workdir):
    """Per-class agreement and noise use: in metrics.json, TensorBoard and the printed lines."""
    per_class = metrics["per_class"]
    assert list(per_class) == [f"class{i}" for i in range(6)]   # the tiny classifier's names
    assert sum(row["images"] for row in per_class.values()) == metrics["eval_examples"]
    # The same images and noise as the overall agreement: the classes' hits add up to it.
    hits = sum(row["agreement"] * row["images"] for row in per_class.values() if row["images"])
    assert hits / metrics["eval_examples"] == pytest.approx(metrics["agreement"], abs=1e-6)
    scored = {name: row["agreement"] for name, row in per_class.items() if row["images"]}
    worst = min(scored, key=scored.get)
    assert metrics["worst_class"] == worst
    assert metrics["worst_class_agreement"] == scored[worst]
    assert metrics["epsilon_diversity_threshold"] == 0.2 and metrics["noise_use_samples"] == 8
    for name, row in per_class.items():
        assert (row["epsilon_diversity"] is None) == (row["images"] < 2), (name, row)
        warned = f"warning: class {name!r} has held-out agreement" in printed
        assert warned == (row["agreement"] is not None and row["agreement"] < 0.5), name
    final = [line for line in printed.splitlines() if "held-out agreement" in line
             and "warning" not in line][-1]
    assert f"; worst class {worst} {scored[worst]:.3f} ({per_class[worst]['images']} images)" \
        in final
    tags = _held_out_tags(workdir)
    assert {"held_out/agreement", "held_out/worst_class_agreement"} <= tags
    assert {f"held_out/agreement_per_class/{name}" for name in scored} <= tags


def test_train_writes_outputs(trained):
    metrics, workdir = trained.metrics, trained.workdir
    _check_per_class_report(metrics, trained.printed, workdir)
    # The final evaluation runs on both sides of G_ema's standing statistics; the reported
    # agreement is the one after them.
    assert trained.calls == [("evaluate",), ("standing", 3, 3), ("evaluate",)]
    assert 0.0 <= metrics["agreement_without_standing_stats"] <= 1.0
    assert metrics["standing_stats_batches"] == 3
    # Evaluation runs an explicit number of steps: Keras never reads past the data.
    assert not [w for w in trained.warnings if "ran out of data" in str(w.message)]
    for name in ("metrics.json", "reconstructions.png", "config.json", "tensorboard"):
        assert os.path.exists(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert json.load(f) == metrics
    assert metrics["steps"] == 4 and metrics["eval_examples"] == 16
    assert metrics["cpu_bfloat16"] is False   # tiny_config pins float32
    assert 0.0 <= metrics["agreement"] <= 1.0 and metrics["images_per_second"] > 0
    assert len(_checkpoint_files(workdir)) == 1 + 2 * 2    # index file + 2 checkpoints
    assert trained.seeds == [pipeline.stream_seed(trained.config.seed, 0)]


def test_a_run_loads_the_classifier_once(trained, tiny_classifier_path):
    assert trained.metrics["preflight"]["status"] == "accepted_risk"
    assert trained.config.feature_weight > 0 and trained.config.feature_layer == "logits"
    assert trained.loads.count(tiny_classifier_path) == 1, trained.loads


def test_train_resumes(trained, tmp_path, monkeypatch, training_stream_seeds):
    workdir = _copy(trained.workdir, tmp_path)
    calls = _record_calls(monkeypatch)
    config = copy.deepcopy(trained.config)
    config.num_steps = 8
    config.keep_checkpoints = 2
    assert training.train(config, workdir, verbose=0)["steps"] == 8
    assert sorted(_checkpoint_files(workdir))[1:] == [
        "ckpt-6.data-00000-of-00001", "ckpt-6.index", "ckpt-8.data-00000-of-00001",
        "ckpt-8.index"]
    restored = training.restore_inverter(workdir)
    assert int(restored.g_optimizer.iterations) == 8
    # Again for the resumed run, and standing statistics once more on restoring (what
    # bin/export serves).
    assert calls == [("evaluate",), ("standing", 3, 3), ("evaluate",), ("standing", 3, 3)]
    # The resumed run reads the data stream of its step instead of replaying the first one.
    assert training_stream_seeds == [pipeline.stream_seed(config.seed, 4)]
    assert training_stream_seeds[0] != trained.seeds[0]


def test_incompatible_config_names_the_key_and_keeps_checkpoints(tiny_config, trained,
                                                                  tmp_path):
    workdir = _copy(trained.workdir, tmp_path)
    before = _checkpoint_files(workdir)
    tiny_config.model.ch = 8
    with pytest.raises(ValueError, match=r"model\.ch=4.*model\.ch=8"):
        training.train(tiny_config, workdir, verbose=0)
    assert _checkpoint_files(workdir) == before


def test_bad_strategy_and_missing_tpu_are_one_line_errors(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="strategy='gpu'.*") as e:
        training.train(tiny_config, str(tmp_path / "a"), strategy="gpu")
    assert "mirrored" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(RuntimeError, match="no TPU is reachable") as e:
        training.train(tiny_config, str(tmp_path / "b"), strategy="tpu", tpu="grpc://127.0.0.1:1")
    assert "\n" not in str(e.value)
    tiny_config.dataset = "shapez"
    with pytest.raises(ValueError, match="shapez") as e:
        training.train(tiny_config, str(tmp_path / "c"))
    assert "\n" not in str(e.value)
    for name in "abc":
        assert not os.path.exists(tmp_path / name)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_config, trained, tmp_path,
                                                        monkeypatch):
    workdir = _copy(trained.workdir, tmp_path)
    good = _checkpoint_files(workdir)
    monkeypatch.setattr(losses, "generator_hinge_loss", lambda s: s[0] * float("nan"))
    tiny_config.num_steps = 8
    with pytest.raises(FloatingPointError, match=r"g_loss became nan at step 5.*ckpt-4"):
        training.train(tiny_config, workdir, verbose=0)
    assert _checkpoint_files(workdir) == good


# The same end-to-end path (bin/train killed by SIGKILL after a checkpoint, the same command
# resuming from its step) runs on every CI run under two workers (`make test-processes`):
# test_multiworker.py::test_two_workers_checkpoint_once_resume_after_sigkill_and_agree.
@pytest.mark.slow
def test_sigkill_then_rerun_resumes_at_saved_step(tiny_classifier_path, shapes_data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    cmd = [sys.executable, os.path.join(ROOT, "bin", "train"), f"--workdir={workdir}",
           f"--config.classifier={tiny_classifier_path}", f"--config.data_dir={shapes_data_dir}",
           "--config.model.ch=4", "--config.model.noise_dim=16", "--config.model.embed_dim=8",
           "--config.batch_size=8", "--config.num_steps=4000", "--config.checkpoint_every=2",
           "--config.steps_per_execution=1",
           "--config.eval_examples=16", "--config.num_images=4", "--config.keep_checkpoints=2",
           # The tiny classifier is random: the pre-flight check would rightly refuse it.
           "--config.preflight.enabled=False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    index = os.path.join(workdir, "checkpoints", "checkpoint")
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(index):
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(index), "no checkpoint was written within 120 s"
    with open(index) as f:
        saved_step = int(f.readline().split("ckpt-")[1].strip().strip('"'))
    assert saved_step >= 2
    cmd[cmd.index("--config.num_steps=4000")] = f"--config.num_steps={saved_step + 2}"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"from step {saved_step} to {saved_step + 2}" in out.stdout
    assert "ran out of data" not in out.stderr
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert json.load(f)["steps"] == saved_step + 2
