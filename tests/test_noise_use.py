"""Noise use (ε-diversity), the collapse check before invariance verdicts, Φ's ε-variance
fraction, and the per-class lines `bin/train` prints.

Generators here are stubs with a known dependence on ε: one whose output is a function of the
logits only, one whose colour is drawn from ε. The numbers follow from their definitions.
"""

import types

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.analysis import invariance, runner
from logit_inversion.analysis.model import AnalysisModel
from logit_inversion.data import shapes
from logit_inversion.models import noise_use
from logit_inversion.training import class_report


def _shapes(n=48, seed=0):
    """Rendered `shapes` images in [-1, 1] with their labels (no dataset build needed)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % shapes.NUM_CLASSES
    images = shapes.render_shapes(labels, **shapes.sample_factors(rng, n))
    return images.astype(np.float32) / 127.5 - 1.0, labels


def _logits(images):
    """A stand-in classifier: three classes, the image's dominant colour channel."""
    return tf.reduce_mean(tf.convert_to_tensor(images, tf.float32), axis=(1, 2)) * 10.0


def _stub_image(logits, noise, uses_noise):
    """uint8 images `[B, 32, 32, 3]`: a plain colour from the logits (plus a colour from ε when
    `uses_noise`), and a diagonal ramp so that images are not flat."""
    colour = tf.tanh(tf.cast(logits, tf.float32) / 10.0)
    if uses_noise:
        colour = tf.tanh(colour + 2.0 * tf.cast(noise[:, :3], tf.float32))
    ramp = tf.linspace(-0.2, 0.2, 32)
    image = colour[:, None, None, :] * 0.8 + (ramp[None, :, None, None] + ramp[None, None, :, None])
    return tf.cast(tf.round((tf.clip_by_value(image, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)


def _stub_model(name, uses_noise):
    return AnalysisModel(
        name=name, path=name, kind="export", classify_fn=None, logits_fn=_logits,
        generate_fn=lambda z, e: _stub_image(z, e, uses_noise), resolution=32,
        num_classes=3, noise_dim=4, class_names=("red", "green", "blue"))


# ---- the definition --------------------------------------------------------------------


def test_pairwise_distance_is_the_mean_rms_distance_over_pairs():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5, 4, 4, 3))
    expected = np.mean([np.sqrt(np.mean((x[i] - x[j]) ** 2))
                        for i in range(5) for j in range(i + 1, 5)])
    assert noise_use.pairwise_distance(x) == pytest.approx(expected, rel=1e-9)
    assert noise_use.pairwise_distance(np.repeat(x[:1], 3, axis=0)) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match=r"images \[n ≥ 2, \.\.\.\]\. Received: images\.shape"):
        noise_use.pairwise_distance(x[:1])


def test_a_sampler_that_draws_real_images_scores_one_and_a_collapsed_one_zero():
    images, labels = _shapes(240)
    real, real_labels = _shapes(240, seed=1)
    # Sample k of image i: another real image of the same class (a perfect sampler).
    perfect = np.stack([images, np.roll(images, -shapes.NUM_CLASSES, axis=0)], axis=1)
    rows = noise_use.epsilon_diversity(perfect, labels, real, real_labels, shapes.NUM_CLASSES)
    for row in rows:
        assert row["epsilon_diversity"] == pytest.approx(1.0, abs=0.15), row
    collapsed = np.stack([images, images], axis=1)
    rows = noise_use.epsilon_diversity(collapsed, labels, real, real_labels, shapes.NUM_CLASSES)
    assert noise_use.overall(rows) == pytest.approx(0.0, abs=1e-6)
    assert noise_use.ignores_noise(noise_use.overall(rows))
    # A class with no image has no value; it does not count in the overall mean.
    rows = noise_use.epsilon_diversity(perfect, labels, real, real_labels, shapes.NUM_CLASSES + 1)
    assert rows[-1] == {"images": 0, "epsilon_distance": None, "real_distance": None,
                        "epsilon_diversity": None}
    assert noise_use.overall(rows) is not None and not noise_use.ignores_noise(None)


def test_epsilon_diversity_rejects_mismatched_shapes():
    images, labels = _shapes(12)
    with pytest.raises(ValueError, match=r"Expected samples \[n, K ≥ 2, \.\.\.\]"):
        noise_use.epsilon_diversity(images[:, None], labels, images, labels, 6)
    with pytest.raises(ValueError, match=r"Expected real_images \[m, 32, 32, 3\]"):
        noise_use.epsilon_diversity(np.stack([images] * 2, 1), labels, images[:, :16], labels, 6)


# ---- the collapse check before invariance verdicts --------------------------------------


def test_collapse_check_fires_on_a_generator_that_ignores_noise_and_not_otherwise():
    images, _ = _shapes(48)
    data = types.SimpleNamespace(images=images)
    ignoring, using = _stub_model("ignores", False), _stub_model("uses", True)
    lines = []
    values = runner.check_noise_use([ignoring, using], data, seed=0, log=lines.append)
    assert values["ignores"] == pytest.approx(0.0, abs=1e-6)
    assert values["uses"] > noise_use.THRESHOLD
    assert lines == [f"warning: ignores: the generator ignores its noise (ε-diversity "
                     f"{values['ignores']:.3f} < {noise_use.THRESHOLD:g}): invariance figures "
                     "of this model are not meaningful"]

    collapsed = invariance.run(ignoring, data, seed=0, samples=4, show=2)
    assert collapsed["summary"]["generator_ignores_noise"] is True
    assert collapsed["summary"]["verdict"] == noise_use.NOT_TESTABLE == \
        "not testable: the generator ignores ε"
    assert {row["verdict"] for row in collapsed["tables"]["per_class"]} == {noise_use.NOT_TESTABLE}
    varied = invariance.run(using, data, seed=0, samples=4, show=2)
    assert varied["summary"]["generator_ignores_noise"] is False
    assert varied["summary"]["epsilon_diversity"] == pytest.approx(values["uses"], rel=0.3)
    assert varied["summary"]["verdict"] != noise_use.NOT_TESTABLE


def test_epsilon_variance_fraction_reads_zero_one_and_the_share_between():
    rng = np.random.default_rng(0)
    per_image = rng.normal(0, 1, (6, 1, 8))         # what each image's logits fix
    per_noise = rng.normal(0, 1, (1, 5, 8))         # what each ε adds, the same for every image
    classes = np.zeros(6, int)
    keeps = np.ones((6, 5), bool)

    def fraction(samples, keep=keeps):
        return invariance.epsilon_variance_fraction(samples, keep, classes, 2)

    assert fraction(np.broadcast_to(per_image, (6, 5, 8)))[0]["epsilon_variance_fraction"] == \
        pytest.approx(0.0, abs=1e-12)
    assert fraction(np.broadcast_to(per_noise, (6, 5, 8)))[0]["epsilon_variance_fraction"] == \
        pytest.approx(1.0)
    both = per_image + per_noise
    within = np.square(both - both.mean(1, keepdims=True)).sum()
    total = np.square(both - both.mean((0, 1))).sum()
    row = fraction(both)[0]
    assert row["epsilon_variance_fraction"] == pytest.approx(within / total)
    assert 0 < row["epsilon_variance_fraction"] < 1 and row["samples"] == 30
    assert fraction(both)[1]["epsilon_variance_fraction"] is None      # class 1 has no image
    # Samples that lose the class do not count; an image left with one sample drops out.
    dropped = keeps.copy()
    dropped[0, 1:] = False
    assert fraction(both, dropped)[0]["images"] == 5
    with pytest.raises(ValueError, match=r"Received: samples\.shape=\(6, 5, 8\), keeps\.shape"):
        fraction(both, keeps[:, :3])


# ---- per-class lines of bin/train -------------------------------------------------------


class _StubInverter:
    """What `class_report.scores` uses of a `LogitInverter`, with a stub generator."""

    def __init__(self, uses_noise):
        self.uses_noise = uses_noise
        self.classifier = lambda images: _logits(images)
        self.classifier.spec = types.SimpleNamespace(class_names=("red", "green", "blue"))

    def _noise(self, n, stream, counter):
        return tf.random.stateless_normal((n, 4), seed=(stream, counter))

    def sample_noise(self, n, seed):
        return tf.random.stateless_normal((n, 4), seed=seed)

    def generate(self, logits, noise):
        return tf.cast(_stub_image(logits, noise, self.uses_noise), tf.float32) / 127.5 - 1.0


def test_class_report_scores_agreement_and_noise_use_per_class():
    images, _ = _shapes(48)
    batches = [{"image": tf.constant(images[i:i + 16])} for i in range(0, 48, 16)]
    ignoring = class_report.scores(_StubInverter(False), batches, samples=3)
    using = class_report.scores(_StubInverter(True), batches, samples=3)
    classes = np.argmax(_logits(images), -1)
    for report in (ignoring, using):
        assert list(report["per_class"]) == ["red", "green", "blue"]
        assert [row["images"] for row in report["per_class"].values()] == \
            np.bincount(classes, minlength=3).tolist()
        assert report["noise_use_samples"] == 3
    assert ignoring["classes_ignoring_noise"] == [
        name for name, row in ignoring["per_class"].items() if row["images"] >= 2]
    assert ignoring["epsilon_diversity"] == pytest.approx(0.0, abs=1e-6)
    assert using["classes_ignoring_noise"] == [] and using["epsilon_diversity"] > 0.2
    with pytest.raises(ValueError, match=r"samples must be an integer ≥ 2\. Received: samples=1"):
        class_report.scores(_StubInverter(True), batches, samples=1)


def _report(agreements, diversities=None):
    diversities = diversities or [0.5] * len(agreements)
    per_class = {f"c{i}": {"images": 10, "agreement": a, "epsilon_diversity": d}
                 for i, (a, d) in enumerate(zip(agreements, diversities))}
    worst = min((a, name) for name, a in zip(per_class, agreements) if a is not None)
    return {"per_class": per_class, "worst_class": worst[1], "worst_class_agreement": worst[0],
            "epsilon_diversity": float(np.mean([d for d in diversities if d is not None])),
            "epsilon_diversity_threshold": noise_use.THRESHOLD,
            "classes_ignoring_noise": [name for name, row in per_class.items()
                                       if noise_use.ignores_noise(row["epsilon_diversity"])]}


def test_a_class_below_one_half_warns_and_the_worst_is_named():
    report = _report([0.9, 0.3, 0.6, None], [0.5, 0.5, 0.05, None])
    lines = class_report.warning_lines(report)
    assert lines == ["warning: class 'c1' has held-out agreement 0.300 < 0.5 (10 images)",
                     "warning: the generator ignores its noise for 1 class(es) (ε-diversity "
                     "< 0.2: c2 0.050)"]
    assert class_report.summary(report).startswith("worst class c1 0.300 (10 images)")
    assert class_report.warning_lines(_report([0.9, 0.5, 0.7])) == []
    many = class_report.warning_lines(_report([0.1] * (class_report.MAX_WARNINGS + 3)))
    assert len(many) == class_report.MAX_WARNINGS + 1
    assert many[-1].startswith("warning: 3 more classes have held-out agreement < 0.5")


def test_epsilon_variance_fraction_interval_covers_it_and_separates_clear_cases():
    rng = np.random.default_rng(1)
    classes = np.repeat([0, 1], 30)
    keeps = np.ones((60, 4), bool)
    keeps[0, 1:] = False                            # an image left with one sample drops out
    per_image = rng.normal(0, 1, (60, 1, 3, 3, 3))
    per_noise = rng.normal(0, 1, (60, 4, 3, 3, 3))

    def mean_fraction(samples):
        rows = invariance.epsilon_variance_fraction(samples, keeps, classes, 2)
        return np.mean([r["epsilon_variance_fraction"] for r in rows])

    # Mostly what the logits fix (ε explains little) against mostly ε.
    fixed, loose = per_image + 0.3 * per_noise, 0.3 * per_image + per_noise
    intervals = {}
    for name, samples in (("fixed", fixed), ("loose", loose)):
        low, high = invariance.epsilon_variance_fraction_interval(samples, keeps, classes, 2,
                                                                  resamples=300)
        assert low < mean_fraction(samples) < high, name
        assert (low, high) == invariance.epsilon_variance_fraction_interval(
            samples, keeps, classes, 2, resamples=300)   # seeded
        intervals[name] = (low, high)
    assert intervals["fixed"][1] < intervals["loose"][0]
    assert np.isnan(invariance.epsilon_variance_fraction_interval(
        fixed, keeps, np.arange(60), 60, resamples=20)[0])   # no class has two images


def test_invariance_summary_carries_the_fraction_interval():
    images, _ = _shapes(48)
    data = types.SimpleNamespace(images=images)
    summary = invariance.run(_stub_model("uses", True), data, seed=0, samples=4,
                             show=2)["summary"]
    low, high = summary["epsilon_variance_fraction_low"], summary["epsilon_variance_fraction_high"]
    assert low <= summary["epsilon_variance_fraction"] <= high
    assert 0 < summary["epsilon_variance_fraction_images"] <= 48
    assert "(95 %" in summary["verdict"]
