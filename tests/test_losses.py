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
