"""Losses and metrics are pure functions: checked against hand-computed values."""

import numpy as np
import pytest

from logit_inversion.models import losses, metrics


def test_discriminator_hinge_loss_matches_definition():
    real = np.array([2.0, 0.5, -1.0], "float32")
    fake = np.array([-2.0, 0.0, 1.0], "float32")
    expected = np.mean([0.0, 0.5, 2.0]) + np.mean([0.0, 1.0, 2.0])
    assert float(losses.discriminator_hinge_loss(real, fake)) == pytest.approx(expected)


def test_generator_hinge_loss_is_negative_mean_score():
    assert float(losses.generator_hinge_loss(np.array([1.0, 3.0], "float32"))) == -2.0


def test_logit_consistency_is_zero_only_for_equal_rankings():
    z = np.array([[3.0, 1.0, -2.0]], "float32")
    assert float(losses.logit_consistency_loss(z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.logit_consistency_loss(z[:, ::-1].copy(), z)) > 1.0


def test_pixel_loss():
    a = np.zeros((1, 2, 2, 3), "float32")
    assert float(losses.pixel_loss(a + 0.5, a)) == pytest.approx(0.5)


def test_top1_agreement_and_cosine():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]], "float32")
    b = np.array([[3.0, 0.0], [1.0, 0.0], [5.0, 1.0]], "float32")
    assert float(metrics.top1_agreement(a, b)) == pytest.approx(2 / 3)
    assert float(metrics.logit_cosine(a, a)) == pytest.approx(1.0)


def test_diversity_reward_is_zero_for_equal_draws_and_clipped():
    import numpy as np
    from logit_inversion.models import losses as _losses
    x = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype("float32")
    e1 = np.zeros((4, 16), "float32")
    e2 = np.ones((4, 16), "float32")
    assert float(_losses.diversity_reward(x, x, e1, e2, 0.5)) == 0.0
    # |Δx| = 0.2 per pixel for |Δε| = 1: a ratio of 0.2, under the clip.
    np.testing.assert_allclose(float(_losses.diversity_reward(x, x + 0.2, e1, e2, 0.5)), 0.2,
                               rtol=1e-5)
    assert float(_losses.diversity_reward(x, x + 2.0, e1, e2, 0.5)) == 0.5


def test_diversity_term_trains_and_changes_the_generator_step(tiny_config):
    import numpy as np
    import tensorflow as tf
    from logit_inversion import training
    images = tf.random.stateless_uniform((8, 32, 32, 3), (0, 1), -1.0, 1.0)
    results = {}
    import keras
    for weight in (0.0, 0.0, 1.0):
        tiny_config.diversity_weight = weight
        keras.utils.set_random_seed(0)   # the same initial weights for every run
        inverter = training.build_inverter(tiny_config)
        training.compile_inverter(inverter, tiny_config)
        logs = inverter.train_step(images)
        assert np.isfinite(float(logs["g_loss"]))
        results.setdefault(weight, []).append(
            [w.numpy() for w in inverter.generator.trainable_weights])
    (plain, again), (diverse,) = results[0.0], results[1.0]
    assert all(np.array_equal(a, b) for a, b in zip(plain, again))   # the check is sound
    assert any(not np.allclose(a, b) for a, b in zip(plain, diverse))
