"""The noise tests (`analysis.stats`) and the factor metric built on them: the null reads 0 with
an interval holding 0, the originals themselves read 1, and verdicts need the interval to
exclude the null."""

import numpy as np
import pytest

from logit_inversion.analysis import factors, stats
from logit_inversion.data import shapes


def _factor_sets(n, seed):
    """Labels, the originals' factors and independent draws of the same class (the null)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, shapes.NUM_CLASSES, n)
    return labels, shapes.sample_factors(rng, n), shapes.sample_factors(rng, n)


def test_random_draws_of_the_right_class_read_zero_with_an_interval_holding_it():
    labels, original, draws = _factor_sets(400, seed=0)
    rows = factors.factor_agreement(draws, original, labels, resamples=400, permutations=200)
    assert [r["factor"] for r in rows] == list(shapes.FACTOR_NAMES)
    for row in rows:
        assert row["recovered_low"] <= 0.0 <= row["recovered_high"], row
        assert abs(row["recovered"]) < 0.1, row
        assert row["recovered_p"] > 0.05, row
        if row["factor"] in factors.LINEAR:
            assert row["spearman_low"] <= 0.0 <= row["spearman_high"], row
        else:
            assert row["spearman"] is None
    # Rotation is undefined for circles and rings: fewer images carry it, and the row says so.
    rotation = rows[-1]
    assert rotation["images"] == int(np.isin(labels, [1, 2, 3, 5]).sum()) < 400
    assert rows[0]["images"] == 400


def test_the_originals_themselves_read_one():
    labels, original, _ = _factor_sets(200, seed=1)
    for row in factors.factor_agreement(original, original, labels, resamples=200,
                                        permutations=100):
        assert row["recovered"] == pytest.approx(1.0)
        assert row["recovered_low"] == pytest.approx(1.0)
        assert row["own_error"] == pytest.approx(0.0, abs=1e-9)
        assert row["recovered_p"] < 0.05
        if row["factor"] in factors.LINEAR:
            assert row["spearman"] == pytest.approx(1.0)


def test_a_partly_kept_factor_reads_between_zero_and_one_and_a_shuffle_below_zero():
    labels, original, draws = _factor_sets(300, seed=2)
    half = {k: 0.5 * original[k] + 0.5 * draws[k] for k in factors.LINEAR}
    for row in factors.factor_agreement(half, original, labels, resamples=200, permutations=100):
        assert 0.0 < row["recovered_low"] and row["recovered_high"] < 1.0, row
    # A reconstruction that sits at the opposite end of the range: farther than a random
    # same-class original, so the metric goes negative instead of being clipped.
    low, high = shapes.POSITION_RANGE
    mirrored = {"position_x": low + high - original["position_x"]}
    row, = factors.factor_agreement(mirrored, original, labels, resamples=200, permutations=100)
    assert row["recovered_high"] < 0.0 and row["spearman"] == pytest.approx(-1.0)


def test_factor_distances_are_circular_for_hues_and_rotation():
    assert factors.factor_distances(0.95, 0.05, "shape_hue", 0) == pytest.approx(36.0)
    # A square turned by a quarter turn is the same square; a circle has no rotation.
    assert factors.factor_distances(np.pi / 2, 0.0, "rotation", 1) == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(factors.factor_distances(1.0, 0.0, "rotation", 0))
    with pytest.raises(ValueError, match="Unknown factor.*name=colour"):
        factors.factor_distances(0.0, 0.0, "colour", 0)


def test_bad_readings_are_refused_in_one_line():
    labels, original, _ = _factor_sets(10, seed=4)
    with pytest.raises(ValueError, match=r"Expected \[10\] readings of scale"):
        factors.factor_agreement({"scale": original["scale"][:5]}, original, labels)
    with pytest.raises(ValueError, match="'scale' is missing"):
        factors.factor_agreement({"scale": original["scale"]}, {}, labels)


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(0).normal(1.0, 1.0, 500)
    first = stats.bootstrap_interval(np.mean, values, resamples=300, seed=7)
    assert first == stats.bootstrap_interval(np.mean, values, resamples=300, seed=7)
    assert first[0] < values.mean() < first[1]
    # The half-width is about 1.96 standard errors.
    assert first[1] - first[0] == pytest.approx(2 * 1.96 * values.std() / np.sqrt(500), rel=0.2)
    with pytest.raises(ValueError, match="same positive number of rows"):
        stats.bootstrap_interval(np.mean, values, values[:3])
    with pytest.raises(ValueError, match="level must be in"):
        stats.bootstrap_interval(np.mean, values, level=95)


def test_permutation_p_value_small_for_an_effect_and_not_for_noise():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 100), rng.normal(0, 1, 100)

    def difference(x, y):
        return float(np.mean(y) - np.mean(x))

    def null(shifted):
        pooled = np.concatenate([a, shifted])
        return lambda g: difference(*np.split(g.permutation(pooled), 2))

    assert stats.permutation_p_value(difference(a, b), null(b), 300, seed=1) > 0.05
    assert stats.permutation_p_value(difference(a, b + 1.0), null(b + 1.0), 300, seed=1) < 0.01
    with pytest.raises(ValueError, match="alternative must be"):
        stats.permutation_p_value(0.0, null(b), alternative="bigger")


def test_verdict_needs_the_interval_to_exclude_the_null():
    assert stats.verdict((0.1, 0.3)) == "agrees"
    assert stats.verdict((-0.3, -0.1)) == "disagrees"
    assert stats.verdict((-0.1, 0.3)) == stats.WITHIN_NOISE
    assert stats.verdict((0.02, 0.08), null=0.1, expected="below") == "agrees"
    assert stats.verdict((float("nan"), float("nan"))) == stats.WITHIN_NOISE
    low, high = stats.proportion_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    assert np.isnan(stats.proportion_interval(0, 0)[0])
    d = stats.difference_interval(0.30, 1000, 0.31, 1000)
    assert stats.verdict(d) == stats.WITHIN_NOISE
    assert stats.verdict(stats.difference_interval(0.30, 1000, 0.60, 1000)) == "agrees"
    with pytest.raises(ValueError, match="p2 must be a rate"):
        stats.difference_interval(0.3, 10, 1.5, 10)


def test_interval_difference_adds_the_two_spreads_and_refuses_missing_ones():
    # Two means whose own intervals are ±0.0196 (s.e. 0.01 each): the difference has s.e.
    # √2 · 0.01, so 0.05 apart is a difference and 0.02 apart is not.
    a, b = 0.50, 0.55
    low, high = stats.interval_difference(a, (a - 0.0196, a + 0.0196), b, (b - 0.0196, b + 0.0196))
    assert (low + high) / 2 == pytest.approx(0.05)
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(2) * 0.01, rel=1e-3)
    assert stats.verdict((low, high)) == "agrees"
    assert stats.verdict(stats.interval_difference(b, (0.53, 0.57), a, (0.48, 0.52))) == \
        "disagrees"
    close = stats.interval_difference(0.50, (0.48, 0.52), 0.52, (0.50, 0.54))
    assert stats.verdict(close) == stats.WITHIN_NOISE
    assert np.isnan(stats.interval_difference(0.5, (None, None), 0.6, (0.5, 0.7))[0])
    assert np.isnan(stats.interval_difference(0.5, (0.4, 0.6), 0.6, (float("nan"), 0.7))[0])
