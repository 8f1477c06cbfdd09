"""Classifiers outside the registry, without a metadata.json, described by config keys alone."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from logit_inversion import testing, training
from logit_inversion.classifiers import frozen
from logit_inversion.classifiers import load_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Hub48(tf.Module):
    """TF Hub format: `__call__` takes 48×48 images in [0, 255] and returns 7 logits; logit 0 is
    the mean pixel, so a test can see which range the images arrived in."""

    def __init__(self, size=48):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal([3, 6], seed=[3, 4]) / 255.0)
        self.__call__ = tf.function(
            self._logits, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])

    def _logits(self, images):
        mean = tf.reduce_mean(images, axis=[1, 2])
        return tf.concat([tf.reduce_mean(mean, -1, keepdims=True), mean @ self.kernel], -1)


class SignatureOnly(tf.Module):
    """Not callable: one signature, `classify(pixels)` → {"probabilities", "scores"} (5 classes,
    20×20 images in [-1, 1])."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal([3, 5], seed=[5, 6]))

    @tf.function(input_signature=[tf.TensorSpec([None, 20, 20, 3], tf.float32, name="pixels")])
    def classify(self, pixels):
        scores = tf.reduce_mean(pixels, axis=[1, 2]) @ self.kernel
        return {"probabilities": tf.nn.softmax(scores), "scores": scores}


@pytest.fixture(scope="module")
def hub48(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("foreign") / "hub48")
    tf.saved_model.save(Hub48(), path)
    assert not os.path.exists(os.path.join(path, frozen.METADATA_FILENAME))
    return path


@pytest.fixture(scope="module")
def signature_only(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("foreign") / "signature_only")
    module = SignatureOnly()
    tf.saved_model.save(module, path, signatures={"classify": module.classify})
    return path


def _constant_images(values, size=32):
    return np.stack([np.full((size, size, 3), v, np.float32) for v in values])


def test_hub_module_size_and_logits_inferred_range_from_flags(hub48):
    clf = load_classifier(hub48, {"value_range": (0, 255), "input_size": None})
    assert clf.spec == frozen.ClassifierSpec(48, (0.0, 255.0), 7)
    logits = keras.ops.convert_to_numpy(clf(_constant_images([-1.0, 0.0, 1.0])))
    assert logits.shape == (3, 7)
    np.testing.assert_allclose(logits[:, 0], [0.0, 127.5, 255.0], atol=1e-3)


def test_signature_only_model_with_dict_output(signature_only):
    spec = {"value_range": (-1, 1), "signature": "classify", "output_key": "scores"}
    clf = load_classifier(signature_only, spec)
    assert (clf.spec.input_size, clf.spec.num_classes) == (20, 5)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 20, 20, 3)).astype(np.float32)
    kernel = tf.random.stateless_normal([3, 5], seed=[5, 6])   # SignatureOnly's kernel
    expected = (tf.reduce_mean(images, axis=[1, 2]) @ kernel).numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clf(images)), expected, rtol=1e-5)


@pytest.mark.parametrize("spec, message", [
    ({}, "needs classifier_spec.value_range"),
    ({"value_range": (-1, 1)}, "has no signature 'serving_default' (it has ['classify']); set "
                               "classifier_spec.signature"),
    ({"value_range": (-1, 1), "signature": "classify"},
     "returns a dict with keys ['probabilities', 'scores']; set classifier_spec.output_key"),
    ({"value_range": (-1, 1), "signature": "classify", "output_key": "scores",
      "num_classes": 4}, "(batch, 4); got (2, 5) for a batch of 2 (set classifier_spec.num_classes"),
])
def test_what_cannot_be_inferred_names_the_key(signature_only, spec, message):
    with pytest.raises(ValueError) as error:
        load_classifier(signature_only, spec)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_dynamic_input_size_needs_the_flag(tmp_path):
    path = str(tmp_path / "dynamic")
    tf.saved_model.save(testing._TinyClassifier(3, None, 0), path)   # [None, None, None, 3]
    with pytest.raises(ValueError) as error:
        frozen.resolve_spec(path, {"value_range": (0, 1)})
    assert str(error.value).startswith(
        "Cannot infer classifier_spec.input_size of classifier")
    assert "input shape in its signature is [?, ?, ?, 3]" in str(error.value)
    clf = load_classifier(path, {"value_range": (0, 1), "input_size": 24})
    assert (clf.spec.input_size, clf.spec.num_classes) == (24, 3)


def test_flags_override_metadata_and_registry(hub48, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"kind{i}" for i in range(7)) + "\n")
    with_metadata = tmp_path / "hub48_meta"
    tf.saved_model.save(Hub48(), str(with_metadata))
    (with_metadata / frozen.METADATA_FILENAME).write_text(json.dumps(
        {"input_size": 48, "value_range": [0.0, 1.0], "num_classes": 7}))
    assert load_classifier(str(with_metadata)).spec.value_range == (0.0, 1.0)
    spec = frozen.resolve_spec(str(with_metadata), {"value_range": (0, 255),
                                                    "class_names_file": str(names)})
    assert spec.value_range == (0.0, 255.0) and spec.class_names[6] == "kind6"
    registry = frozen.resolve_spec("shapes", {"has_background": True})
    assert registry.has_background and registry.class_names[0] == "circle"


def test_remote_handle_outside_registry_works_with_flags(hub48, monkeypatch):
    import tensorflow_hub as hub
    loaded = []
    monkeypatch.setattr(hub, "load", lambda url: loaded.append(url) or tf.saved_model.load(hub48))
    url = "https://tfhub.dev/someone/foreign/classification/1"
    clf = load_classifier(url, {"value_range": (0, 255)})
    assert loaded[0] == url and clf.spec.input_size == 48 and clf.spec.num_classes == 7
    kaggle = load_classifier("someone/foreign/tensorFlow2/classification", {"value_range": (0, 1)})
    assert loaded[-1] == "https://www.kaggle.com/models/someone/foreign/tensorFlow2/classification"
    assert kaggle.spec.num_classes == 7


def test_build_inverter_from_config_keys(hub48, shapes_data_dir):
    config = testing.tiny_config(hub48, shapes_data_dir,
                                 **{"classifier_spec.value_range": (0, 255)})
    training.validate_config(config)
    inverter = training.build_inverter(config)
    assert inverter.num_classes == 7 and inverter.classifier.spec.input_size == 48
    assert inverter.classifier.spec.value_range == (0.0, 255.0)
    config.classifier_spec.value_range = None
    with pytest.raises(ValueError, match="needs classifier_spec.value_range"):
        training.validate_config(config)


def test_train_without_what_cannot_be_inferred_writes_nothing(hub48, shapes_data_dir, tmp_path):
    config = testing.tiny_config(hub48, shapes_data_dir)
    with pytest.raises(ValueError) as error:
        training.train(config, str(tmp_path / "run"), verbose=0)
    assert str(error.value).startswith(
        f"Classifier '{hub48}' needs classifier_spec.value_range, the pixel range it expects")
    assert not (tmp_path / "run").exists()


@pytest.mark.processes
def test_bin_train_with_a_signature_only_classifier(signature_only, shapes_data_dir, tmp_path):
    workdir = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", "train"), f"--workdir={workdir}",
         f"--config.classifier={signature_only}", "--config.classifier_spec.value_range=-1,1",
         "--config.classifier_spec.signature=classify",
         "--config.classifier_spec.output_key=scores", f"--config.data_dir={shapes_data_dir}",
         "--config.model.ch=4", "--config.model.noise_dim=16", "--config.model.embed_dim=8",
         "--config.batch_size=8", "--config.num_steps=2", "--config.checkpoint_every=2",
         "--config.steps_per_execution=1",
         "--config.eval_examples=8", "--config.num_images=4"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["classifier"] == signature_only
    spec = json.loads((workdir / "config.json").read_text())["classifier_spec"]
    assert spec["signature"] == "classify" and spec["output_key"] == "scores"
    # Export and resume read the spec back from config.json.
    restored = training.restore_inverter(str(workdir))
    assert (restored.classifier.spec.input_size, restored.num_classes) == (20, 5)
