"""Tests for the frozen classifier layer, on tiny models saved in temp dirs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.classifiers import frozen as classifiers
from logit_inversion.classifiers import ClassifierSpec, load_classifier


class MeanPixel(tf.Module):
    """A TF Hub-format "classifier" whose logits are [pixel mean, pixel std, image height]."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        mean = tf.reduce_mean(images, axis=[1, 2, 3])
        std = tf.math.reduce_std(images, axis=[1, 2, 3])
        height = tf.cast(tf.shape(images)[1], tf.float32) * tf.ones_like(mean)
        return tf.stack([mean, std, height], axis=1)


class TinyDense(tf.Module):
    """A TF Hub-format classifier with a variable, and a serving signature returning a dict."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal([3, 4], seed=[1, 2]))

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def __call__(self, images):
        return tf.reduce_mean(images, axis=[1, 2]) @ self.kernel

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32, name="pixels")])
    def serve(self, pixels):
        return {"logits": self(pixels), "probs": tf.nn.softmax(self(pixels))}


def _save_module(module, path, metadata=None, signatures=None):
    tf.saved_model.save(module, str(path), signatures=signatures)
    if metadata is not None:
        (path / "metadata.json").write_text(json.dumps(metadata))
    return str(path)


@pytest.fixture
def mean_pixel_dir(tmp_path):
    metadata = {"input_size": 16, "value_range": [0.0, 255.0], "num_classes": 3, "mode": "x"}
    return _save_module(MeanPixel(), tmp_path / "mean_pixel", metadata)


@pytest.fixture
def tiny_dense_dir(tmp_path):
    module = TinyDense()
    return _save_module(module, tmp_path / "tiny_dense", signatures={"serving_default": module.serve})


@pytest.fixture
def keras_file(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(5),
        ]
    )
    path = tmp_path / "tiny.keras"
    model.save(path)
    return str(path), model


def test_hub_format_savedmodel_spec_from_metadata_and_value_range(mean_pixel_dir):
    clf = load_classifier(mean_pixel_dir)
    assert clf.spec == ClassifierSpec(16, (0.0, 255.0), 3)
    assert clf.num_classes == 3 and clf.handle == mean_pixel_dir
    # A constant image keeps its value under resizing, so the mean shows the range mapping:
    # -1 -> 0, 0 -> 127.5, 1 -> 255.
    images = np.stack([np.full((32, 32, 3), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    logits = keras.ops.convert_to_numpy(clf(images))
    assert logits.shape == (3, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits[:, 0], [0.0, 127.5, 255.0], atol=1e-3)
    np.testing.assert_allclose(logits[:, 2], 16.0)  # resized from 32 to the spec's 16


def test_resize_is_antialiased(mean_pixel_dir):
    clf = load_classifier(mean_pixel_dir)
    # A 1-px checkerboard downsampled 3x (48 -> 16): antialiased resizing blurs it to near-flat
    # grey; plain bilinear resizing samples source pixel centres and keeps the +-127.5 extremes.
    checker = np.indices((48, 48)).sum(axis=0) % 2 * 2.0 - 1.0
    images = np.repeat(checker[None, :, :, None], 3, axis=-1).astype(np.float32)
    mean, std, _ = keras.ops.convert_to_numpy(clf(images))[0]
    assert mean == pytest.approx(127.5, abs=1.0)
    assert std < 30.0


def test_explicit_spec_overrides_metadata(mean_pixel_dir):
    clf = load_classifier(mean_pixel_dir, ClassifierSpec(4, (-1.0, 1.0), 3))
    logits = keras.ops.convert_to_numpy(clf(np.full((1, 9, 9, 3), 0.5, np.float32)))
    np.testing.assert_allclose(logits[0], [0.5, 0.0, 4.0], atol=1e-5)


def test_serving_signature_with_output_key(tiny_dense_dir):
    module = tf.saved_model.load(tiny_dense_dir)
    spec = ClassifierSpec(8, (0.0, 1.0), 4, signature="serving_default", output_key="logits")
    clf = load_classifier(tiny_dense_dir, spec)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    expected = module((images + 1) / 2).numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clf(images)), expected, rtol=1e-5)


def test_dict_output_without_key_is_an_error(tiny_dense_dir):
    spec = ClassifierSpec(8, (0.0, 1.0), 4, signature="serving_default")
    with pytest.raises(ValueError, match="output_key"):
        load_classifier(tiny_dense_dir, spec)


def test_keras_file(keras_file):
    path, model = keras_file
    clf = load_classifier(path, ClassifierSpec(8, (0.0, 1.0), 5))
    images = np.random.default_rng(1).uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model((images + 1) / 2, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clf(images)), expected, rtol=1e-5)
    assert clf.trainable_weights == [] and len(clf.weights) > 0


@pytest.mark.parametrize("fixture", ["mean_pixel_dir", "keras_file", "tiny_dense_dir"])
def test_frozen_but_differentiable(fixture, request):
    handle = request.getfixturevalue(fixture)
    if fixture == "keras_file":
        clf = load_classifier(handle[0], ClassifierSpec(8, (0.0, 1.0), 5))
    elif fixture == "tiny_dense_dir":
        clf = load_classifier(handle, ClassifierSpec(8, (0.0, 1.0), 4))  # hub-format __call__
    else:
        clf = load_classifier(handle)
    assert not clf.trainable and clf.trainable_weights == []
    images = tf.Variable(tf.random.uniform((2, 8, 8, 3), -1.0, 1.0))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(clf(images) ** 2)
    gradient = tape.gradient(loss, images)
    assert gradient is not None and float(tf.reduce_sum(tf.abs(gradient))) > 0.0
    # Inside a trainable model, the classifier still contributes no trainable weights.
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 1), clf])
    assert len(model.trainable_weights) == 2


def test_float32_under_mixed_precision(mean_pixel_dir):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        clf = load_classifier(mean_pixel_dir)
        logits = clf(tf.ones((1, 16, 16, 3), tf.bfloat16))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert clf.compute_dtype == "float32" and logits.dtype == tf.float32


def test_export_of_a_model_containing_the_classifier(tiny_dense_dir, tmp_path):
    clf = load_classifier(tiny_dense_dir, ClassifierSpec(8, (0.0, 1.0), 4))
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, clf(keras.layers.Conv2D(3, 1)(inputs)))
    images = np.random.default_rng(2).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(images))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve", model.call, input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)]
    )
    archive.write_out(str(tmp_path / "export"), verbose=False)
    del model, clf
    reloaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(reloaded.serve(images).numpy(), expected, rtol=1e-5)


def test_get_config_round_trip(mean_pixel_dir):
    clf = load_classifier(mean_pixel_dir, name="clf")
    clone = classifiers.FrozenClassifier.from_config(clf.get_config())
    assert clone.spec == clf.spec and clone.handle == clf.handle and clone.name == "clf"


def test_keras_model_containing_the_classifier_round_trips(mean_pixel_dir, tmp_path):
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, load_classifier(mean_pixel_dir)(keras.layers.Conv2D(3, 1)(inputs)))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    images = np.random.default_rng(3).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(images)), keras.ops.convert_to_numpy(model(images)), rtol=1e-5
    )


def test_bad_handle_lists_accepted_forms(tmp_path):
    for handle in ["no_such_model", str(tmp_path / "missing_dir"), str(tmp_path)]:
        with pytest.raises(ValueError) as error:
            load_classifier(handle)
        message = str(error.value)
        assert "\n" not in message and handle in message
        for form in ["registry name", "shapes", "tfhub.dev", "Kaggle handle", "SavedModel", ".keras"]:
            assert form in message


def test_corrupt_savedmodel_is_a_one_line_error(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="Cannot load classifier") as error:
        load_classifier(str(tmp_path), ClassifierSpec(8, (0.0, 1.0), 4))
    assert "\n" not in str(error.value)


def test_wrong_output_width(mean_pixel_dir):
    with pytest.raises(ValueError, match=r"\(batch, 7\).*\(2, 3\)") as error:
        load_classifier(mean_pixel_dir, ClassifierSpec(16, (0.0, 1.0), 7))
    assert mean_pixel_dir in str(error.value)


def test_missing_metadata_needs_a_spec(tiny_dense_dir):
    with pytest.raises(ValueError, match="metadata.json"):
        load_classifier(tiny_dense_dir)


def test_registry_missing_shipped_model(monkeypatch, tmp_path):
    spec = ClassifierSpec(32, (0.0, 1.0), 6)
    monkeypatch.setitem(classifiers.REGISTRY, "gone", (str(tmp_path / "gone"), spec))
    with pytest.raises(ValueError, match="does not exist"):
        load_classifier("gone")


def test_registry_specs():
    handle, spec = classifiers.REGISTRY["inception_v3"]
    assert handle.startswith("https://tfhub.dev/") and spec.input_size == 299
    assert spec.num_classes == 1001 and spec.has_background
    assert classifiers.REGISTRY["resnet50_v2"][1].input_size == 224
    assert classifiers.REGISTRY["shapes"][1].class_names[0] == "circle"


def test_remote_handle_without_value_range_names_the_key():
    # Checked before any download: the pixel range is the one field no signature gives.
    with pytest.raises(ValueError, match=r"needs classifier_spec\.value_range") as error:
        load_classifier("https://tfhub.dev/google/some/model/1")
    assert "\n" not in str(error.value)
