"""Feature extractors: penultimate, named layers, signature outputs, feature-vector modules."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.classifiers import features, frozen, load_classifier
from logit_inversion.classifiers.training import build_cnn, export_hub_savedmodel

SHAPES = str(frozen.SAVEDMODELS_DIR / "shapes_cnn")
needs_shapes = pytest.mark.skipif(not os.path.isdir(SHAPES), reason="savedmodels/shapes_cnn missing")


def _images(n=4, size=32, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)), tf.float32)


@pytest.fixture(scope="module")
def exported_cnn(tmp_path_factory):
    """A tiny build_cnn exported the way bin/train_classifier exports (with metadata)."""
    keras.utils.set_random_seed(1)
    network = build_cnn(16, 5, width=4)
    path = tmp_path_factory.mktemp("cnn") / "cnn"
    export_hub_savedmodel(network, 16, path)
    (path / "metadata.json").write_text(json.dumps(
        {"input_size": 16, "value_range": [0.0, 1.0], "num_classes": 5, "width": 4}))
    return str(path), network


@needs_shapes
def test_shipped_penultimate_features_are_the_logits_input():
    # Rebuilt from metadata.json: the final dense layer of the rebuilt net maps the features
    # exactly to the shipped SavedModel's logits.
    extractor = features.load_feature_extractor("shapes", layer="penultimate")
    assert extractor.output_dim == 128
    images = _images()
    vectors = extractor(images).numpy()
    assert vectors.shape == (4, 128)
    dense = features.rebuild_shipped_cnn(SHAPES).layers[-1]
    kernel, bias = (w.numpy() for w in dense.weights)
    np.testing.assert_allclose(vectors @ kernel + bias, load_classifier("shapes")(images).numpy(),
                               rtol=1e-4, atol=1e-4)


@needs_shapes
def test_named_layer_pooled_or_flattened():
    images = _images()
    pooled = features.load_feature_extractor("shapes", layer="re_lu_3")  # 16×16×64 map
    flat = features.load_feature_extractor("shapes", layer="re_lu_3", size=2)
    assert (pooled.output_dim, flat.output_dim) == (64, 256)
    grid = flat(images).numpy().reshape(4, 2, 2, 64)
    # Averaging the 2×2 cells gives the global average.
    np.testing.assert_allclose(grid.mean(axis=(1, 2)), pooled(images).numpy(), atol=1e-5)


@needs_shapes
def test_gradients_reach_the_images():
    extractor = features.load_feature_extractor("shapes")
    images = _images(2)
    with tf.GradientTape() as tape:
        tape.watch(images)
        loss = tf.reduce_sum(extractor(images) ** 2)
    gradient = tape.gradient(loss, images)
    assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0
    assert extractor.trainable_weights == []


def test_exported_features_signature(exported_cnn):
    path, network = exported_cnn
    assert "features" in tf.saved_model.load(path).signatures
    extractor = features.load_feature_extractor(path)   # uses the `features` signature
    images = _images(3, 16)
    penultimate = keras.Model(network.inputs, network.layers[-2].output)
    expected = penultimate((images.numpy() + 1) / 2, training=False)
    np.testing.assert_allclose(extractor(images).numpy(), expected.numpy(), atol=1e-5)
    # A named signature output: the logits via serving_default.
    by_key = features.load_feature_extractor(path, layer="serving_default:logits")
    np.testing.assert_allclose(by_key(images).numpy(), load_classifier(path)(images).numpy(),
                               atol=1e-5)
    assert by_key.output_dim == 5


def test_feature_vector_module_output(tmp_path):
    # A TF Hub-format feature-vector module: its call returns a spatial map, pooled here.
    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(np.random.default_rng(0).normal(size=(3, 3, 3, 8)),
                                      dtype=tf.float32)
            self.__call__ = tf.function(
                lambda x: tf.nn.relu(tf.nn.conv2d(x, self.kernel, 1, "SAME")),
                input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])

    tf.saved_model.save(Module(), str(tmp_path))
    spec = frozen.ClassifierSpec(8, (0.0, 1.0), 1)
    pooled = features.load_feature_extractor(str(tmp_path), layer="output", spec=spec)
    flat = features.load_feature_extractor(str(tmp_path), layer="output", spec=spec, size=4)
    assert (pooled.output_dim, flat.output_dim) == (8, 128)
    images = _images(2, 8)
    np.testing.assert_allclose(flat(images).numpy().reshape(2, 16, 8).mean(1),
                               pooled(images).numpy(), atol=1e-5)


def test_keras_file_penultimate_and_config_round_trip(tmp_path):
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(6, 3, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3)(pooled))
    path = str(tmp_path / "m.keras")
    model.save(path)
    spec = frozen.ClassifierSpec(8, (0.0, 1.0), 3)
    extractor = features.load_feature_extractor(path, spec=spec)
    assert extractor.output_dim == 6
    images = _images(2, 8)
    clone = features.FeatureExtractor.from_config(extractor.get_config())
    np.testing.assert_allclose(clone(images).numpy(), extractor(images).numpy(), atol=1e-6)
    conv = features.load_feature_extractor(path, layer="conv", spec=spec, size=3)
    assert conv.output_dim == 3 * 3 * 6


@pytest.mark.parametrize("kwargs, message", [
    ({"layer": "no_such_layer"}, "Received: layer=no_such_layer"),
    ({"layer": "re_lu_3", "size": 3}, "Received: size=3"),
    ({"size": 0}, "Received: size=0"),
    ({"layer": ""}, "Received: layer=''"),
])
@needs_shapes
def test_bad_arguments_fail_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        features.load_feature_extractor("shapes", **kwargs)
    assert "\n" not in str(info.value)


def test_not_a_model_fails(tmp_path):
    with pytest.raises(ValueError, match="Received: handle="):
        features.load_feature_extractor(str(tmp_path / "missing"))


@needs_shapes
def test_conditioning_classifier_sizes_the_inverter(shapes_data_dir):
    # conditioning.layer=penultimate: G and D take 128-wide vectors, logits stay reachable.
    from logit_inversion import testing
    from logit_inversion.training import build_inverter

    config = testing.tiny_config("shapes", shapes_data_dir)
    config.conditioning.layer = "penultimate"
    inverter = build_inverter(config)
    assert isinstance(inverter.classifier, features.ConditioningClassifier)
    assert inverter.num_classes == 128
    images = _images(2)
    vectors = inverter.classifier(images)
    assert vectors.shape == (2, 128)
    np.testing.assert_allclose(inverter.classifier.logits(images).numpy(),
                               load_classifier("shapes")(images).numpy(), atol=1e-5)
    assert inverter.generate(vectors, inverter.sample_noise(2)).shape == (2, 32, 32, 3)
    # The default keeps the paper's logits.
    assert features.load_conditioning("shapes").num_classes == 6
