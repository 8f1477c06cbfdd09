"""The frozen classifier under XLA: a gradient through it keeps every variable a runtime
parameter, for TF Hub-format, signature-only and Keras classifiers, and the inlined graph
computes what the restored one computes.

Checked against TensorFlow 2.21: `classifiers/inline.py` reaches Grappler's function
inliner through one private helper, fenced in `logit_inversion/_tf_private.py`;
`test_private_inliner_still_flattens` fails loudly (rather than letting the jit step silently
recompile) if an upgrade moves or changes it."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from logit_inversion import testing
from logit_inversion.benchmarks import xla_dump
from logit_inversion.classifiers import inline
from logit_inversion.classifiers.frozen import load_classifier


@pytest.fixture(scope="module")
def keras_classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_clf")
    model = keras.Sequential([
        keras.Input((24, 24, 3)), keras.layers.Conv2D(4, 3, strides=2),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(6)])
    model.save(folder / "tiny.keras")
    (folder / "metadata.json").write_text(json.dumps(
        {"input_size": 24, "value_range": [0.0, 1.0], "num_classes": 6}))
    return str(folder / "tiny.keras")


@pytest.fixture(scope="module")
def hub_classifier(tmp_path_factory):
    return testing.save_tiny_classifier(str(tmp_path_factory.mktemp("hub") / "tiny"),
                                        input_size=24)


@pytest.fixture(params=["hub", "signature", "keras"])
def classifier(request, hub_classifier, keras_classifier):
    if request.param == "hub":
        return load_classifier(hub_classifier)
    if request.param == "signature":
        return load_classifier(hub_classifier, {"signature": "serving_default"})
    return load_classifier(keras_classifier)


def _input_gradient(classifier, weights):
    with tf.GradientTape() as tape:
        logits = classifier(tf.tanh(weights))
        loss = tf.reduce_sum(tf.square(logits))
    return loss, tape.gradient(loss, weights)


def test_private_inliner_still_flattens(hub_classifier):
    tf_version = tuple(int(part) for part in tf.__version__.split(".")[:2])
    assert tf_version >= (2, 21), tf.__version__  # the version the helper was checked on
    loaded = tf.saved_model.load(hub_classifier)
    traced = tf.function(lambda x: loaded(x)).get_concrete_function(
        tf.TensorSpec([None, 24, 24, 3], tf.float32))
    assert {"StatefulPartitionedCall"} <= {n.op for n in traced.graph.as_graph_def().node}
    ops = {node.op for node in inline._inline_functions(traced).node}
    assert "Conv2D" in ops and "ReadVariableOp" in ops
    assert not ops & {"PartitionedCall", "StatefulPartitionedCall"}


def test_gradient_under_jit_reads_no_variable_as_constant(classifier):
    weights = tf.Variable(tf.random.stateless_normal((2, 32, 32, 3), (3, 4)))
    step = tf.function(lambda: _input_gradient(classifier, weights), jit_compile=True)
    hlo = step.experimental_get_compiler_ir()(stage="hlo")
    assert xla_dump.constant_variable_reads(hlo) == []
    # Every weight of the classifier (and the image's variable) is a parameter of the program.
    assert len(_entry_parameters(hlo)) == 1 + len(_variables(classifier))


def _variables(classifier):
    if isinstance(classifier.model, keras.layers.Layer):
        return classifier.model.weights
    return [v for v in tf.train.TrackableView(classifier.model).descendants()
            if isinstance(v, tf.Variable)]


def _entry_parameters(hlo):
    layout = hlo.split("entry_computation_layout={(", 1)[1].split(")->", 1)[0]
    parameters, depth, start = [], 0, 0
    for index, char in enumerate(layout):
        depth += char in "[{("
        depth -= char in "]})"
        if char == "," and depth == 0:
            parameters.append(layout[start:index].strip())
            start = index + 1
    return parameters + [layout[start:].strip()]


def test_inlined_graph_matches_the_restored_call(classifier):
    weights = tf.Variable(tf.random.stateless_normal((2, 32, 32, 3), (5, 6)))
    eager_loss, eager_grad = _input_gradient(classifier, weights)  # the restored call
    for jit in (False, True):
        loss, grad = tf.function(lambda: _input_gradient(classifier, weights),
                                 jit_compile=jit)()
        np.testing.assert_allclose(loss, eager_loss, rtol=1e-4)
        np.testing.assert_allclose(grad, eager_grad, rtol=1e-3, atol=1e-5)


def test_traced_classifier_reads_its_weights_at_run_time(hub_classifier):
    classifier = load_classifier(hub_classifier)
    traced = tf.function(classifier, jit_compile=True)
    images = tf.random.stateless_uniform((2, 32, 32, 3), (7, 8), -1.0, 1.0)
    before = traced(images).numpy()
    variables = _variables(classifier)
    assert variables
    for variable in variables:
        variable.assign(variable * 2.0)
    after = traced(images).numpy()
    # The tiny net is positively homogeneous of degree 2 in its two weight tensors.
    np.testing.assert_allclose(after, 4.0 * before, rtol=1e-4, atol=1e-5)


def test_dump_reader_finds_constant_reads():
    line = ('  %ReadVariableOp.4 = f32[3,3,3,8]{3,2,1,0} constant({...}), '
            'metadata={op_type="ReadVariableOp" op_name="x/Conv2D/ReadVariableOp"}')
    param = '  %arg1.1 = f32[3,3,3,8]{3,2,1,0} parameter(1), metadata={op_name="XLA_Args"}'
    assert xla_dump.constant_variable_reads(f"{line}\n{param}") == [line.strip()]


def test_inlined_constants_carry_no_control_input(hub_classifier):
    # A constant ordered after the call's input lets Grappler's constant folding close a cycle
    # with the caller's arithmetic (the function then runs unoptimized).
    classifier = load_classifier(hub_classifier)
    graph_def = classifier._inlined_graph()._graph_def
    constants = [node for node in graph_def.node if node.op == "Const"]
    assert constants
    assert all(not name.startswith("^") for node in constants for name in node.input)


def test_a_function_built_after_the_inlined_graph_exports(hub_classifier, tmp_path):
    # The inlined graph is traced once, by whichever function calls the classifier first; a
    # later export must still find the classifier's variables among those it uses.
    classifier = load_classifier(hub_classifier)
    tf.function(classifier)(tf.zeros((1, 32, 32, 3)))  # builds the inlined graph
    archive = keras.export.ExportArchive()
    archive.track(classifier)
    archive.add_endpoint("logits", lambda x: classifier(x),
                         [tf.TensorSpec([None, 32, 32, 3], tf.float32)])
    archive.write_out(str(tmp_path / "export"), verbose=False)
    images = tf.random.stateless_uniform((2, 32, 32, 3), (9, 9), -1.0, 1.0)
    reloaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(reloaded.logits(images), classifier(images), rtol=1e-5, atol=1e-5)
