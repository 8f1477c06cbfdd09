"""One seed → one ε everywhere: `bin/evaluate`, `bin/analyze`, `bin/reconstruct`, the training
TensorBoard grid and the served model's `reconstruct` signature draw bit-identical noise from
the same seed (`models.noise`, the convention the export's graph computes).

Each path is run as its command runs it, on the session's tiny untrained inverter (a workdir
without standing statistics, and the export); the ε it feeds the generator is recorded and
compared, bit for bit, with the `noise` output of the SavedModel's `reconstruct` signature for
seeds s, s + 1, …
"""

import types

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.models import noise as noise_lib
from logit_inversion.serving import model as model_handle

SEED = 7      # not the default 0: a path that ignored the seed would draw other noise
N = 4         # more than one image: a path that gave every image one seed would differ


@pytest.fixture(scope="module")
def tiny(tiny_inverter, tiny_export):
    served = tf.saved_model.load(tiny_export.version).signatures["reconstruct"]
    images = tf.zeros([N, 32, 32, 3], tf.uint8)
    seeds = tf.constant(np.arange(SEED, SEED + N), tf.int64)
    return types.SimpleNamespace(
        workdir=tiny_inverter.fixed_stats_workdir, version=tiny_export.version,
        data_dir=tiny_inverter.data_dir,
        served=served(images=images, seed=seeds)["noise"].numpy(),
        noise_dim=tiny_inverter.config.model.noise_dim)


@pytest.fixture
def recorded(monkeypatch):
    """The ε of every `InverterModel.generate` call (what the commands generate through)."""
    calls = []
    original = model_handle.InverterModel.generate

    def generate(self, logits, noise):
        calls.append(np.array(noise, np.float32))
        return original(self, logits, noise)

    monkeypatch.setattr(model_handle.InverterModel, "generate", generate)
    return calls


def test_the_served_noise_is_the_convention(tiny):
    assert tiny.served.shape == (N, tiny.noise_dim)
    np.testing.assert_array_equal(tiny.served, noise_lib.noise(N, tiny.noise_dim, SEED).numpy())
    # Row i is a function of seed + i alone: in another batch, alone, the same bits.
    np.testing.assert_array_equal(
        tiny.served[2:3], noise_lib.noise_from_seeds(tf.constant([SEED + 2]), tiny.noise_dim))
    assert not np.array_equal(tiny.served[0], tiny.served[1])


@pytest.mark.parametrize("kind", ["workdir", "export"])
def test_bin_evaluate_draws_the_served_noise(tiny, recorded, kind):
    from logit_inversion.evaluation import models

    model = models.load_model(tiny.workdir if kind == "workdir" else tiny.version)
    logits = np.random.default_rng(0).normal(size=(N, 6)).astype(np.float32)
    model.reconstruct(tf.zeros([N, 32, 32, 3]), tf.constant(logits), SEED)
    (noise,) = recorded
    np.testing.assert_array_equal(noise, tiny.served)


@pytest.mark.parametrize("kind", ["workdir", "export"])
def test_bin_analyze_draws_the_served_noise(tiny, recorded, kind):
    from logit_inversion.analysis import data, model as analysis_model, reconstructions

    model = analysis_model.open_model(tiny.workdir if kind == "workdir" else tiny.version)
    images = data.load_images("shapes", "test", 32, N, tiny.data_dir)
    reconstructions.run(model, images, seed=SEED)
    np.testing.assert_array_equal(recorded[0], tiny.served)


@pytest.mark.parametrize("kind", ["workdir", "export"])
def test_bin_reconstruct_draws_the_served_noise(tiny, recorded, kind, tmp_path):
    from logit_inversion.serving import reconstructions

    reconstructions.write_reconstructions(
        tiny.workdir if kind == "workdir" else tiny.version, "shapes", f"test[:{N}]",
        str(tmp_path / "out"), data_dir=tiny.data_dir, seed=SEED, progress=False)
    np.testing.assert_array_equal(recorded[0], tiny.served)


def test_tensorboard_grid_draws_the_served_noise(tiny, tmp_path):
    from logit_inversion.training import callbacks

    inverter = model_handle.open_model(tiny.workdir).inverter
    board = callbacks.TensorBoardLogger(str(tmp_path / "tb"), tf.zeros([N, 32, 32, 3]))
    board.set_model(inverter)
    board.on_epoch_end(0)
    np.testing.assert_array_equal(board.fixed_noise,
                                  noise_lib.noise(N, tiny.noise_dim, callbacks.GRID_SEED))
    np.testing.assert_array_equal(callbacks.grid_noise(inverter, N, SEED), tiny.served)


def test_bad_arguments_are_one_line():
    for call, message in ((lambda: noise_lib.noise(-1, 4, 0), "Received: n=-1"),
                          (lambda: noise_lib.noise(2, 0, 0), "Received: noise_dim=0"),
                          (lambda: noise_lib.noise(2, 4, 1.5), "Received: seed=1.5")):
        with pytest.raises(ValueError, match=message):
            call()
