"""Known-value tests of the evaluation metrics (pure functions)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.evaluation import (classification, distribution, diversity,
                                        identification, image_quality)


def _images(n, size=16, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)),
                       tf.float32)


# ---- classification -----------------------------------------------------------------

def test_top_k_agreement_known_values():
    logits = tf.constant([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 5.0]])
    recon = tf.constant([[0.0, 2.0, 1.0],   # true top-1 (0) is last: miss at k=1, k=2
                         [0.0, 2.0, 1.0],   # hit
                         [1.0, 2.0, 0.0]])  # class 2 is last: miss at k=1 and k=2
    assert float(classification.top_k_agreement(logits, recon, 1)) == pytest.approx(1 / 3)
    assert float(classification.top_k_agreement(logits, recon, 3)) == pytest.approx(1.0)
    assert float(classification.top_k_agreement(logits, logits, 1)) == 1.0
    with pytest.raises(ValueError, match="k=4"):
        classification.top_k_agreement(logits, recon, 4)


def test_label_accuracy_and_logit_errors():
    recon = tf.constant([[3.0, 1.0], [3.0, 1.0]])
    assert float(classification.label_accuracy(recon, [0, 1])) == 0.5
    a = tf.constant([[3.0, 4.0]])
    assert float(classification.logit_cosine(a, a)) == pytest.approx(1.0)
    assert float(classification.logit_cosine(a, -a)) == pytest.approx(-1.0)
    assert float(classification.logit_cosine(a, [[4.0, -3.0]])) == pytest.approx(0.0, abs=1e-6)
    assert float(classification.logit_relative_l2(a, a)) == 0.0
    # ‖(3, 4) − (0, 0)‖ / ‖(3, 4)‖ = 1; ‖(6, 8) − (3, 4)‖ / 5 = 1.
    assert float(classification.logit_relative_l2(a, [[0.0, 0.0]])) == pytest.approx(1.0)
    assert float(classification.logit_relative_l2(a, 2 * a)) == pytest.approx(1.0)


# ---- image quality ------------------------------------------------------------------

def test_identical_images_psnr_inf_ssim_one():
    x = _images(3)
    assert np.all(np.isinf(image_quality.psnr(x, x).numpy()))
    np.testing.assert_allclose(image_quality.ssim(x, x).numpy(), 1.0, atol=1e-6)


def test_psnr_known_value():
    x = tf.zeros((1, 8, 8, 3))
    # Every pixel off by 0.2 in a range of 2: PSNR = 10·log10(2² / 0.04) = 20 dB.
    assert float(image_quality.psnr(x, x + 0.2)[0]) == pytest.approx(20.0, abs=1e-3)


def test_ssim_lower_for_unrelated_images():
    x, y = _images(2, seed=1), _images(2, seed=2)
    assert np.all(image_quality.ssim(x, y).numpy() < 0.1)


def test_ms_ssim_needs_176_px_and_says_so():
    assert image_quality.ms_ssim_min_size() == 176
    with pytest.raises(ValueError, match="at least 176 px. Received: size=32"):
        image_quality.ms_ssim(_images(1, 32), _images(1, 32))
    x = tf.random.stateless_uniform((1, 176, 176, 3), (0, 1), -1, 1)
    assert float(image_quality.ms_ssim(x, x)[0]) == pytest.approx(1.0, abs=1e-5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        image_quality.psnr(_images(1, 16), _images(1, 8))


# ---- identification -----------------------------------------------------------------

def _classes(n_per_class, num_classes):
    return np.repeat(np.arange(num_classes), n_per_class)


def test_candidates_are_same_class_and_distinct():
    labels = np.random.default_rng(0).permutation(_classes(12, 3))
    cand = identification.sample_candidates(labels, num_distractors=9, seed=3)
    assert cand.shape == (36, 10)
    np.testing.assert_array_equal(cand[:, 0], np.arange(36))
    for row in cand:
        assert len(set(row)) == 10
        assert np.all(labels[row] == labels[row[0]])
    np.testing.assert_array_equal(cand, identification.sample_candidates(labels, 9, seed=3))


def test_too_few_per_class_is_an_error():
    with pytest.raises(ValueError, match="Class 1 has 5 images"):
        identification.sample_candidates(np.array([0] * 10 + [1] * 5), num_distractors=9)


def test_identical_reconstructions_identify_perfectly():
    x = _images(40)
    result = identification.identification(x, x, _classes(10, 4), num_distractors=9)
    for key in ("l2", "l2_reverse", "ssim", "ssim_reverse"):
        assert float(result[key]) == 1.0
    assert float(result["chance"]) == pytest.approx(0.1)


def test_noisy_reconstructions_still_identify():
    x = _images(40)
    noisy = x + 0.3 * _images(40, seed=9)
    result = identification.identification(x, noisy, _classes(10, 4))
    assert float(result["l2"]) == 1.0 and float(result["ssim"]) > 0.9


def test_shuffled_reconstructions_are_near_chance():
    # 600 images in 6 classes; reconstructions permuted within each class, so the class is
    # kept but the instance is not: accuracy should be chance, 0.1 (binomial sd ≈ 0.012).
    n_per_class, num_classes = 100, 6
    labels = _classes(n_per_class, num_classes)
    x = _images(len(labels), size=8)
    rng = np.random.default_rng(1)
    perm = np.concatenate([rng.permutation(np.flatnonzero(labels == c))
                           for c in range(num_classes)])
    shuffled = tf.gather(x, perm)
    result = identification.identification(x, shuffled, labels, num_distractors=9)
    for key in ("l2", "l2_reverse", "ssim", "ssim_reverse"):
        assert abs(float(result[key]) - 0.1) < 0.05, (key, float(result[key]))


def test_constant_reconstruction_scores_exactly_chance():
    x = _images(20)
    result = identification.identification(x, tf.zeros_like(x), _classes(10, 2),
                                           num_distractors=4, metrics=("l2",))
    assert float(result["l2"]) == pytest.approx(0.2)


def test_unknown_metric_is_an_error():
    with pytest.raises(ValueError, match="metric='cosine'"):
        identification.pair_similarity(_images(1), _images(1), "cosine")


# ---- distribution -------------------------------------------------------------------

def test_frechet_distance_identical_sets_is_zero():
    f = np.random.default_rng(0).normal(size=(200, 8))
    assert float(distribution.frechet_distance(f, f)) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_closed_form_for_an_affine_copy():
    # b = 2a + 1: μb = 2μa + 1, Σb = 4Σa, so FD = ‖μa − μb‖² + tr(Σa + 4Σa − 2·2Σa)
    #                                         = ‖μa + 1‖² + tr(Σa).
    a = np.random.default_rng(1).normal(size=(300, 5)) @ np.diag([1.0, 2.0, 0.5, 1.0, 3.0])
    b = 2 * a + 1
    expected = np.sum((a.mean(0) + 1) ** 2) + np.trace(np.cov(a, rowvar=False))
    assert float(distribution.frechet_distance(a, b)) == pytest.approx(expected, rel=1e-6)


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same = float(distribution.kernel_inception_distance(a, b, subset_size=200))
    shifted = float(distribution.kernel_inception_distance(a, b + 1.0, subset_size=200))
    assert abs(same) < 0.02
    assert shifted > 0.5


def test_feature_widths_must_match():
    with pytest.raises(ValueError, match="widths differ"):
        distribution.frechet_distance(np.zeros((4, 2)), np.zeros((4, 3)))


# ---- diversity ----------------------------------------------------------------------

def test_diversity_known_values():
    x = _images(3)
    assert float(diversity.mean_pairwise_distance(tf.stack([x, x, x]))) == 0.0
    ones = tf.ones((2, 4, 4, 3))
    # Pairs (+1, −1): RMS 2; (+1, +1): 0; (−1, +1)... mean over the 3 pairs of (+1, −1, +1) = 4/3.
    samples = tf.stack([ones, -ones, ones])
    assert float(diversity.mean_pairwise_distance(samples)) == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="K ≥ 2"):
        diversity.mean_pairwise_distance(x[None])
    assert not math.isnan(float(diversity.mean_pairwise_distance(tf.stack([x, -x]))))
