"""Tests for classifier training, export, evaluation and the adversarial attacks (tiny data)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.classifiers import adversarial, frozen as classifiers, training as classifier_training
from logit_inversion.data import shapes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tfds")
    shapes.build_shapes(directory, train_size=192, test_size=64)
    return str(directory)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("models") / "tiny_cnn"
    metadata = classifier_training.train_classifier(
        output, data_dir=data_dir, epochs=1, batch_size=64, width=4,
        eval_pgd_steps=3, command="train tiny", verbose=0,
    )
    return output, metadata


def test_training_writes_savedmodel_and_metadata(trained):
    output, metadata = trained
    assert sorted(p.name for p in output.iterdir()) == [
        "assets", "fingerprint.pb", "metadata.json", "saved_model.pb", "variables"
    ]
    # No staging directories are left behind.
    assert [p.name for p in output.parent.iterdir()] == ["tiny_cnn"]
    on_disk = json.loads((output / "metadata.json").read_text())
    assert on_disk == json.loads(json.dumps(metadata))
    assert on_disk["input_size"] == 32 and on_disk["num_classes"] == 6
    assert on_disk["class_names"] == list(shapes.CLASS_NAMES) and on_disk["has_background"] is False
    assert on_disk["value_range"] == [0.0, 1.0] and on_disk["mode"] == "standard"
    assert on_disk["command"] == "train tiny" and on_disk["training_seconds"] > 0
    assert 0.0 <= on_disk["pgd_accuracy"] <= on_disk["test_accuracy"] + 0.1
    assert on_disk["test_examples"] == 64 and on_disk["pgd_examples"] == 64
    assert on_disk["pgd_steps"] == 3


def test_export_is_hub_format(trained):
    output, _ = trained
    loaded = tf.saved_model.load(str(output))
    images = tf.random.uniform((2, 32, 32, 3))
    logits = loaded(images)
    assert logits.shape == (2, 6)
    served = loaded.signatures["serving_default"](images=images)["logits"]
    np.testing.assert_allclose(served.numpy(), logits.numpy(), rtol=1e-5)
    # ...and `load_classifier` reads its spec from metadata.json.
    clf = classifiers.load_classifier(str(output))
    assert clf.spec.class_names == shapes.CLASS_NAMES
    np.testing.assert_allclose(clf(images * 2 - 1).numpy(), logits.numpy(), rtol=1e-4, atol=1e-5)


def test_evaluate_reproduces_metadata(trained, data_dir):
    output, metadata = trained
    results = classifier_training.evaluate_classifier(str(output), data_dir=data_dir, pgd_steps=3)
    assert results["examples"] == 64
    assert results["clean_accuracy"] == metadata["test_accuracy"]
    # Same batches and PGD seed as the evaluation during training: the same adversarial images.
    assert results["robust_accuracy"] == metadata["pgd_accuracy"]


def test_existing_output_is_not_overwritten(trained, data_dir):
    output, _ = trained
    before = (output / "saved_model.pb").read_bytes()
    with pytest.raises(ValueError, match="overwrite"):
        classifier_training.train_classifier(output, data_dir=data_dir, epochs=1, width=4)
    assert (output / "saved_model.pb").read_bytes() == before


def test_optimizer_is_recorded_and_a_bad_one_refused_before_writing(trained, data_dir, tmp_path):
    assert trained[1]["optimizer"] == "sgd"
    with pytest.raises(ValueError, match="Received: optimizer='rmsprop'"):
        classifier_training.train_classifier(tmp_path / "x", data_dir=data_dir, epochs=1,
                                             width=4, optimizer="rmsprop")
    assert not (tmp_path / "x").exists()
    metadata = classifier_training.train_classifier(
        tmp_path / "adam", data_dir=data_dir, optimizer="adam", epochs=1, batch_size=64,
        width=4, eval_pgd_steps=1, eval_examples=8, verbose=0)
    assert metadata["optimizer"] == "adam" and metadata["learning_rate"] == 1e-3


# Both modes run one training loop; the attack that tells them apart has its own unit test
# (test_fgsm_rs_is_one_clipped_step), so the fast suite trains with PGD only.
@pytest.mark.parametrize("mode", [pytest.param("fgsm_rs", marks=pytest.mark.slow), "pgd"])
def test_adversarial_modes_train_and_overwrite(mode, data_dir, tmp_path):
    output = tmp_path / mode
    output.mkdir()
    (output / "old").write_text("old")
    metadata = classifier_training.train_classifier(
        output, data_dir=data_dir, mode=mode, pgd_steps=2, epochs=1, batch_size=64, width=4,
        eval_pgd_steps=2, eval_examples=32, overwrite=True, verbose=0,
    )
    assert metadata["mode"] == mode and metadata["train_pgd_steps"] == (2 if mode == "pgd" else None)
    assert metadata["pgd_examples"] == 32 and metadata["test_examples"] == 64
    # The old directory was replaced as a whole, and no staging or backup directory remains.
    assert not (output / "old").exists() and (output / "saved_model.pb").exists()
    assert [p.name for p in tmp_path.iterdir()] == [mode]


def _linear_logits(images):
    # Class 0 scores the mean pixel, class 1 its negation: gradients are known exactly.
    mean = tf.reduce_mean(images, axis=[1, 2, 3])
    return tf.stack([mean, -mean], axis=1)


def test_pgd_stays_in_the_ball_and_raises_the_loss():
    images = tf.random.uniform((4, 8, 8, 3), 0.0, 1.0, seed=1)
    labels = tf.constant([0, 0, 1, 1])
    epsilon = 0.1
    adv = adversarial.pgd_attack(_linear_logits, images, labels, epsilon, steps=10, seed=0)
    assert float(tf.reduce_max(tf.abs(adv - images))) <= epsilon + 1e-6
    assert float(tf.reduce_min(adv)) >= 0.0 and float(tf.reduce_max(adv)) <= 1.0
    # Label 0 wants a bright image, so the attack darkens it (and brightens label 1 images) by
    # the full budget wherever the [0, 1] box allows.
    expected = tf.concat(
        [tf.maximum(images[:2] - epsilon, 0.0), tf.minimum(images[2:] + epsilon, 1.0)], axis=0
    )
    np.testing.assert_allclose(adv.numpy(), expected.numpy(), atol=1e-6)


def test_fgsm_rs_is_one_clipped_step():
    images = tf.fill((2, 4, 4, 3), 0.5)
    labels = tf.constant([0, 1])
    adv = adversarial.fgsm_rs_attack(_linear_logits, images, labels, epsilon=0.05, seed=3)
    # A 1.25 * epsilon step from a random start in [-eps, eps] ends in [0.25 eps, eps] along
    # the gradient sign (clipped to the ball): darker for label 0, brighter for label 1.
    delta = adv.numpy() - 0.5
    assert delta[0].min() >= -0.05 - 1e-6 and delta[0].max() <= -0.0125 + 1e-6
    assert delta[1].min() >= 0.0125 - 1e-6 and delta[1].max() <= 0.05 + 1e-6
    assert np.isclose(delta, [[-0.05]], atol=1e-6).any()  # some start within 0.25 eps of 0


def test_accuracy_counts_clean_and_robust():
    images = tf.constant(np.linspace(0.3, 0.7, 8, dtype=np.float32))[:, None, None, None]
    images = tf.tile(images, [1, 2, 2, 3])
    # Threshold classifier at 0.5: label 1 when bright. Images at 0.3, 0.357, ... 0.7.
    logits_fn = lambda x: tf.stack([0.5 - tf.reduce_mean(x, [1, 2, 3]), tf.reduce_mean(x, [1, 2, 3]) - 0.5], 1)
    labels = tf.constant([0, 0, 0, 0, 1, 1, 1, 1])
    data = [(images[:4], labels[:4]), (images[4:], labels[4:])]
    results = adversarial.accuracy(logits_fn, data, epsilon=0.1, steps=10)
    assert results["examples"] == 8 and results["clean_accuracy"] == 1.0
    # Exactly the images within epsilon of the threshold flip (here 4 of 8).
    margins = np.abs(images.numpy()[:, 0, 0, 0] - 0.5)
    assert results["robust_accuracy"] == pytest.approx(np.mean(margins > 0.1))
    clean_only = adversarial.accuracy(logits_fn, data, epsilon=0.0)
    assert clean_only["robust_accuracy"] == 1.0


def test_build_cnn_shapes_and_size():
    model = classifier_training.build_cnn(32, 6, width=32)
    assert model.output_shape == (None, 6)
    assert model.count_params() < 1_000_000  # a few MB at most


@pytest.mark.processes
def test_cli_evaluate(trained, data_dir):
    output, metadata = trained
    result = subprocess.run(
        [sys.executable, str(REPO / "bin" / "evaluate_classifier"), f"--classifier={output}",
         # The fixture's one-epoch model is near chance, which the pre-flight check refuses.
         f"--data_dir={data_dir}", "--epsilon=0", "--accept_risk"],
        capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    results = json.loads(result.stdout)
    assert results["clean_accuracy"] == pytest.approx(metadata["test_accuracy"])
