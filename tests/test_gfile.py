"""Workdirs and exports on a filesystem that is not the local disk.

TF's in-memory filesystem (`ram://`) stands in for GCS: no `os`/`open` call can reach it, so
any workdir or export file written without `tf.io.gfile` makes these tests fail.
"""

import json
import uuid

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion import files, training
from logit_inversion.serving import export, loading

gfile = tf.io.gfile


@pytest.fixture
def ram_root():
    root = f"ram://test-{uuid.uuid4().hex}"
    yield root
    if gfile.exists(root):
        gfile.rmtree(root)


def _names(folder):
    return sorted(files.list_names(folder))


def _train(config, workdir):
    """A fresh tiny run in `workdir`, with every output checked."""
    metrics = training.train(config, workdir, verbose=0)
    assert metrics["steps"] == config.num_steps
    names = _names(workdir)
    for name in ("checkpoints", "config.json", "metrics.json", "reconstructions.png",
                 "tensorboard"):
        assert name in names, names
    assert not [n for n in names if ".tmp" in n], names
    assert json.loads(files.read_text(f"{workdir}/metrics.json")) == metrics
    with gfile.GFile(f"{workdir}/reconstructions.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert gfile.listdir(f"{workdir}/tensorboard")


# A resumed run writes with the same functions as a fresh one, and restoring (read below by
# the export) reads the checkpoint back from ram://; so the resume is left to the slow suite.
@pytest.mark.slow
def test_train_resumes_on_ram_filesystem(tiny_config, ram_root):
    workdir = f"{ram_root}/run"
    _train(tiny_config, workdir)
    tiny_config.num_steps = 6
    tiny_config.keep_checkpoints = 2
    assert training.train(tiny_config, workdir, verbose=0)["steps"] == 6
    assert _names(f"{workdir}/checkpoints") == [
        "checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index",
        "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    assert int(training.restore_inverter(workdir).g_optimizer.iterations) == 6


def test_train_export_load_on_ram_filesystem(tiny_config, ram_root, monkeypatch):
    workdir = f"{ram_root}/run"
    tiny_config.keep_checkpoints = 2
    _train(tiny_config, workdir)
    assert _names(f"{workdir}/checkpoints") == [
        "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
        "ckpt-4.data-00000-of-00001", "ckpt-4.index"]

    # Export twice into a ram:// model folder: versions 1 and 2, no staging folder left. Both
    # write one archive: where the files go is under test here, and tracing the signatures
    # again for the second would cost most of an export.
    inverter = training.restore_inverter(workdir)
    assert int(inverter.g_optimizer.iterations) == 4
    archive = export.serving_archive(inverter)
    monkeypatch.setattr(export, "serving_archive", lambda _: archive)
    model_dir = f"{ram_root}/savedmodels/tiny"
    assert export.export_inverter(inverter, model_dir) == f"{model_dir}/1"
    assert export.export_inverter(inverter, model_dir) == f"{model_dir}/2"
    assert _names(model_dir) == ["1", "2"]
    assert tf.saved_model.contains_saved_model(f"{model_dir}/2")
    assert loading.resolve_version(model_dir) == f"{model_dir}/2"
    served = loading.load(model_dir)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    out = served.reconstruct(images, seed=3)
    assert out["reconstructions"].shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(out["reconstructions"],
                                  served.reconstruct(images, seed=3)["reconstructions"])


def test_atomic_write_and_folder_move_on_ram_filesystem(ram_root):
    gfile.makedirs(ram_root)
    path = f"{ram_root}/a.json"
    files.write_atomic(path, "old")
    files.write_atomic(path, b"new")
    assert files.read_text(path) == "new"
    assert _names(ram_root) == ["a.json"]      # no temporary file left beside it

    src, dst = f"{ram_root}/.staging", f"{ram_root}/1"
    gfile.makedirs(f"{src}/variables")
    gfile.makedirs(f"{src}/assets")
    for rel, data in (("saved_model.pb", b"pb"), ("variables/variables.index", b"ix")):
        files.write_atomic(f"{src}/{rel}", data)
    files.move_folder(src, dst)
    assert not gfile.exists(src)
    assert _names(dst) == ["assets", "saved_model.pb", "variables"]
    assert files.read_text(f"{dst}/variables/variables.index") == "ix"
    gfile.makedirs(src)
    with pytest.raises(tf.errors.AlreadyExistsError):
        files.move_folder(src, dst)
