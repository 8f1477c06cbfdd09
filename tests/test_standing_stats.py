"""BigGAN's standing statistics for the EMA generator (`accumulate_standing_stats`)."""

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion import training
from logit_inversion.models import inverter as inverter_lib
from logit_inversion.models.generator import Generator
from logit_inversion.models.layers import batch_norm_layers


@pytest.fixture(scope="module")
def inverter(tmp_path_factory):
    from logit_inversion import testing
    from logit_inversion.data.shapes import build_shapes
    classifier = testing.save_tiny_classifier(str(tmp_path_factory.mktemp("clf") / "tiny"))
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    build_shapes(data_dir, train_size=32, test_size=8)
    config = testing.tiny_config(classifier, data_dir)
    inv = training.build_inverter(config)
    training.compile_inverter(inv, config)
    return inv


def _batches(n, size=8, seed=7):
    return [tf.random.stateless_uniform((size, 32, 32, 3), (i, seed), -1.0, 1.0)
            for i in range(n)]


def _moving(generator):
    return [(layer.moving_mean.numpy(), layer.moving_var.numpy())
            for layer in batch_norm_layers(generator)]


def _batch_statistics(inverter, images, index):
    """One batch's statistics, measured independently: a copy of G_ema whose batch norms
    have momentum 0 takes its batch statistics as moving statistics in one training call."""
    copy = Generator.from_config(inverter.ema_generator.get_config())
    logits = inverter.classifier(images)
    noise = inverter._noise(len(images), inverter_lib._STANDING_STREAM, index)
    copy(logits, noise)
    copy.set_weights(inverter.ema_generator.get_weights())
    for layer in batch_norm_layers(copy):
        layer.momentum = 0.0
    copy(logits, noise, training=True)
    return _moving(copy)


def test_standing_stats_are_the_mean_of_per_batch_statistics(inverter):
    batches = _batches(3)
    expected = [_batch_statistics(inverter, batches[i], i) for i in range(2)]
    weights_before = [w.numpy() for w in inverter.ema_generator.weights
                      if "moving" not in w.path]
    logits = inverter.classifier(batches[0])
    noise = inverter.sample_noise(8, seed=(1, 2))
    outputs_before = inverter.generate(logits, noise).numpy()

    assert inverter.accumulate_standing_stats(iter(batches), 2) == 2

    got = _moving(inverter.ema_generator)
    assert len(got) == len(expected[0]) > 5
    for layer_got, layer_a, layer_b in zip(got, *expected):
        for stat_got, stat_a, stat_b in zip(layer_got, layer_a, layer_b):
            np.testing.assert_allclose(stat_got, (stat_a + stat_b) / 2, rtol=1e-4, atol=1e-5)
    # Nothing but the moving statistics changed (spectral-norm vectors included) ...
    weights_after = [w.numpy() for w in inverter.ema_generator.weights
                     if "moving" not in w.path]
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, weights_after))
    # ... and the inference-mode outputs follow them.
    assert not np.allclose(outputs_before, inverter.generate(logits, noise).numpy())


def test_zero_batches_leave_the_statistics_unchanged(inverter):
    before = _moving(inverter.ema_generator)
    assert inverter.accumulate_standing_stats(_batches(2), 0) == 0
    for (m0, v0), (m1, v1) in zip(before, _moving(inverter.ema_generator)):
        assert np.array_equal(m0, m1) and np.array_equal(v0, v1)


def test_accepts_datasets_of_dicts_and_uses_what_there_is(inverter):
    dataset = tf.data.Dataset.from_tensor_slices(
        {"image": tf.concat(_batches(2, seed=8), 0), "label": tf.zeros(16, tf.int64)}).batch(8)
    before = _moving(inverter.ema_generator)
    assert inverter.accumulate_standing_stats(dataset, 5) == 2
    # Some statistics follow the new images (those of layers fed by the noise alone need not).
    assert any(not np.allclose(old[0], new[0])
               for old, new in zip(before, _moving(inverter.ema_generator)))


@pytest.mark.parametrize("images,num_batches,match", [
    (_batches(1), -1, "num_batches=-1"),
    (_batches(1), 1.5, "num_batches=1.5"),
    ([], 1, "no image batches"),
    ([tf.zeros((8, 16, 16, 3))], 1, r"shape=\(8, 16, 16, 3\)"),
])
def test_bad_inputs_are_one_line_errors(inverter, images, num_batches, match):
    before = _moving(inverter.ema_generator)
    with pytest.raises(ValueError, match=match):
        inverter.accumulate_standing_stats(images, num_batches)
    assert np.array_equal(before[0][0], _moving(inverter.ema_generator)[0][0])


def test_a_train_step_blends_the_online_statistics_back_in(inverter):
    """The documented order: standing statistics must be recomputed after training."""
    inverter.accumulate_standing_stats(_batches(1), 1)
    standing = _moving(inverter.ema_generator)[0][0]
    inverter.train_step(tf.concat(_batches(1), 0))
    assert not np.allclose(standing, _moving(inverter.ema_generator)[0][0])
