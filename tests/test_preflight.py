"""Pre-flight check: the shipped shapes classifier, correctly and deliberately mis-specified."""

import os

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.classifiers import frozen, load_classifier, preflight

SHAPES = str(frozen.SAVEDMODELS_DIR / "shapes_cnn")
pytestmark = pytest.mark.skipif(not os.path.isdir(SHAPES), reason="savedmodels/shapes_cnn missing")


@pytest.fixture(scope="module")
def shapes_batch(shapes_data_dir):
    return preflight.held_out_batch("shapes", "test", shapes_data_dir, 32, 64)


@pytest.fixture(scope="module")
def shapes_cnn():
    return load_classifier("shapes")


class _Wrapped(tf.Module):
    """The shipped model with its outputs changed (softmax, an extra background logit)."""

    def __init__(self, model, how):
        super().__init__()
        self.model, self.how = model, how

    def __call__(self, images):
        logits = self.model(images)
        if self.how == "softmax":
            return tf.nn.softmax(logits)
        return tf.concat([tf.fill([tf.shape(logits)[0], 1], -10.0), logits], axis=1)


def _check(classifier, batch, accept_risk=False):
    images, labels = batch
    report = preflight.preflight(classifier, images, labels, num_data_classes=6)
    return preflight.raise_on_problems(report, accept_risk)


def test_correctly_specified_passes(shapes_cnn, shapes_data_dir):
    report = preflight.check_classifier(shapes_cnn, "shapes", "test", shapes_data_dir,
                                        num_examples=64)
    assert report["status"] == "ok" and report["problems"] == []
    assert report["accuracy"] >= 0.95 > report["near_chance_below"]
    assert report["conventions"]["[0, 1]"] == report["accuracy"]
    assert report["conventions"]["[0, 255]"] < 0.5   # the check can see a wrong range
    assert not report["outputs_look_like_probabilities"]


@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 255.0)])
def test_wrong_value_range_is_caught(shapes_batch, value_range):
    spec = frozen.ClassifierSpec(32, value_range, 6)
    wrong = load_classifier("shapes", spec)
    with pytest.raises(preflight.PreflightError) as info:
        _check(wrong, shapes_batch)
    message = str(info.value)
    assert "\n" not in message
    assert "with inputs in [0, 1] it is 1.000: set classifier_spec.value_range=0,1" in message
    assert f"value_range={value_range}" in message
    # Accepting the risk goes on and keeps the numbers.
    report = _check(wrong, shapes_batch, accept_risk=True)
    assert report["status"] == "accepted_risk" and report["accuracy"] < 0.9


def test_softmax_outputs_are_caught(shapes_cnn, shapes_batch):
    softmax = frozen.FrozenClassifier(_Wrapped(shapes_cnn.model, "softmax"), shapes_cnn.spec,
                                      "softmax")
    with pytest.raises(preflight.PreflightError, match="look like probabilities"):
        _check(softmax, shapes_batch)


def test_background_logit(shapes_cnn, shapes_batch):
    model = _Wrapped(shapes_cnn.model, "background")
    spec = frozen.ClassifierSpec(32, (0.0, 1.0), 7)
    with pytest.raises(preflight.PreflightError, match="set classifier_spec.has_background=True"):
        _check(frozen.FrozenClassifier(model, spec, "bg"), shapes_batch)
    spec = frozen.ClassifierSpec(32, (0.0, 1.0), 7, has_background=True)
    report = _check(frozen.FrozenClassifier(model, spec, "bg"), shapes_batch)
    assert report["accuracy"] >= 0.95 and report["background"]["index0_top1_fraction"] == 0


def test_bgr_classifier_is_caught():
    # `shapes` is symmetric under a red/blue swap (uniformly random hues), so no classifier
    # can tell channel orders apart on it; colour-labelled images can. Class k = the image
    # whose dominant RGB channel is k; the model expects BGR input (it reverses back).
    rng = np.random.default_rng(0)
    labels = np.arange(90) % 3
    fractions = rng.uniform(0.0, 0.3, (90, 8, 8, 3))
    fractions[np.arange(90), :, :, labels] += 0.6
    images = tf.constant(fractions * 2 - 1, tf.float32)

    class ExpectsBGR(tf.Module):
        def __call__(self, bgr):
            return tf.reduce_mean(bgr[..., ::-1], axis=(1, 2)) * 10.0

    bgr = frozen.FrozenClassifier(ExpectsBGR(), frozen.ClassifierSpec(8, (0.0, 1.0), 3), "bgr")
    with pytest.raises(preflight.PreflightError) as info:
        preflight.raise_on_problems(preflight.preflight(bgr, images, labels))
    assert "with inputs in [0, 1] BGR it is 1.000" in str(info.value)
    assert "expects BGR channel order" in str(info.value)


def test_random_classifier_is_near_chance(tiny_classifier_path, shapes_batch):
    with pytest.raises(preflight.PreflightError, match="no common input convention"):
        _check(load_classifier(tiny_classifier_path), shapes_batch)


def test_training_stops_before_the_workdir_exists(tiny_config, tmp_path):
    from logit_inversion.training import train

    tiny_config.classifier = "shapes"
    tiny_config.classifier_spec.value_range = (0.0, 255.0)
    tiny_config.preflight.enabled = True
    tiny_config.preflight.num_examples = 64
    workdir = tmp_path / "run"
    with pytest.raises(preflight.PreflightError, match=r"preflight.accept_risk=True"):
        train(tiny_config, str(workdir), verbose=0)
    assert not workdir.exists()
