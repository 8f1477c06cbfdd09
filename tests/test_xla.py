"""The TPU path on CPU: the train and test steps compile with XLA, in float32 and mixed
bfloat16, when the classifier's input size differs from G's resolution (so the frozen
classifier resizes), and the traced train step holds no host-only op."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from logit_inversion import testing, training
from logit_inversion.classifiers.frozen import resize_images

# Ops that XLA cannot compile and that would send a TPU step to the host (or fail it).
DENIED_OPS = {
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "ScaleAndTranslate", "ScaleAndTranslateGrad",
    "Print", "PrintV2", "DecodeJpeg", "DecodePng", "DecodeImage", "EncodePng", "EncodeJpeg",
    "ReadFile", "WriteFile", "ResizeArea",
}
DENIED_PREFIXES = ("String", "Regex", "AsString", "Decode", "Encode", "Py")


@pytest.fixture(scope="module", params=[48, 24], ids=["up_32_to_48", "down_32_to_24"])
def resized_classifier(request, tmp_path_factory):
    """A tiny classifier whose input size differs from G's 32 px (enlarge or shrink)."""
    path = tmp_path_factory.mktemp("clf") / f"tiny{request.param}"
    return testing.save_tiny_classifier(str(path), input_size=request.param)


@pytest.fixture
def policy():
    """Sets a global dtype policy for one test and restores float32 afterwards."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


def _inverter(classifier, data_dir):
    config = testing.tiny_config(classifier, data_dir)
    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    return inverter


def _images(n=8, r=32):
    return tf.random.stateless_uniform((n, r, r, 3), (0, 1), -1.0, 1.0)


def _op_types(concrete_function):
    """Every op type in a traced function, nested functions (loops, conds, gradients)
    included."""
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def _denied(types):
    return sorted(t for t in types if t in DENIED_OPS or t.startswith(DENIED_PREFIXES))


@pytest.mark.slow  # XLA's CPU compile of the step takes minutes
@pytest.mark.parametrize("dtype_policy", ["float32", "mixed_bfloat16"])
def test_train_and_test_steps_compile_with_xla(resized_classifier, shapes_data_dir, policy,
                                               dtype_policy):
    policy(dtype_policy)
    inverter = _inverter(resized_classifier, shapes_data_dir)
    assert inverter.generator.compute_dtype == dtype_policy.replace("mixed_", "")
    images = _images()
    logs = tf.function(inverter.train_step, jit_compile=True)(images)
    assert int(inverter.g_optimizer.iterations) == 1
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    inverter.reset_metrics()
    logs = tf.function(inverter.test_step, jit_compile=True)(images)
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "agreement"}
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    assert 0.0 <= float(logs["agreement"]) <= 1.0


def test_traced_steps_hold_no_host_only_op(resized_classifier, shapes_data_dir):
    inverter = _inverter(resized_classifier, shapes_data_dir)
    spec = tf.TensorSpec((8, 32, 32, 3), tf.float32)
    train_ops = _op_types(tf.function(inverter.train_step).get_concrete_function(spec))
    test_ops = _op_types(tf.function(inverter.test_step).get_concrete_function(spec))
    # The check must see inside the classifier's restored function and the gradients.
    assert {"Conv2D", "Conv2DBackpropInput", "StatelessRandomNormalV2"} <= train_ops
    assert _denied(train_ops) == []
    assert _denied(test_ops) == []


def test_deny_list_catches_the_antialiased_tf_resize():
    traced = tf.function(
        lambda x: tf.image.resize(x, (24, 24), antialias=True)).get_concrete_function(
            tf.TensorSpec((2, 32, 32, 3), tf.float32))
    assert _denied(_op_types(traced)) == ["ScaleAndTranslate"]


@pytest.mark.parametrize("in_size,out_size", [(32, 48), (32, 24), (128, 224), (30, 7)])
def test_resize_matches_tf_antialiased_bilinear(in_size, out_size):
    images = tf.random.stateless_uniform((2, in_size, in_size, 3), (1, 2), -1.0, 1.0)
    expected = tf.image.resize(images, (out_size, out_size), "bilinear", antialias=True)
    np.testing.assert_allclose(resize_images(images, out_size), expected, atol=5e-5)


# Compile counts and constant variable reads, read from XLA's dump in a subprocess (XLA reads
# its dump flag once per process). The objectives that differentiate the frozen classifier
# (consistency, feature) are the ones that recompiled at every call. Each variant is about
# half a minute of XLA compiling on 2 cores, so `make test-processes` (every CI run) takes the
# first of them and the slow suite every other objective in both precisions.
FAST_VARIANTS = ["consistency-float32"]
SLOW_VARIANTS = [f"{objective}-{policy}"
                 for objective in ("hinge", "consistency", "pixel", "feature")
                 for policy in ("float32", "mixed_bfloat16")
                 if f"{objective}-{policy}" not in FAST_VARIANTS]


def _compile_counts(tmp_path, data_dir, variants):
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "compiles.json"
    script = os.path.join(os.path.dirname(__file__), "_xla_compiles.py")
    result = subprocess.run([sys.executable, script, str(out), data_dir, *variants],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def _assert_compiled_once(results):
    for variant, steps in results.items():
        assert steps["g_steps"] == 3, (variant, steps)
        for method in ("train_step", "test_step"):
            summary = steps[method]
            assert summary["compiles"] == 1, (variant, method, summary)
            assert summary["constant_variable_reads"] == 0, (variant, method, summary)
            assert summary["finite"], (variant, method, summary)


@pytest.mark.processes
def test_jit_steps_compile_once_with_runtime_variables(tmp_path, shapes_data_dir):
    _assert_compiled_once(_compile_counts(tmp_path, shapes_data_dir, FAST_VARIANTS))


@pytest.mark.slow  # each variant compiles two steps on the CPU (about a minute)
def test_jit_steps_compile_once_for_every_objective(tmp_path, shapes_data_dir):
    _assert_compiled_once(_compile_counts(tmp_path, shapes_data_dir, SLOW_VARIANTS))


def _loss_curve(config, jit, steps):
    import keras
    from logit_inversion.data.pipeline import build_dataset
    config.jit_compile = jit
    keras.utils.set_random_seed(config.seed)
    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    data = build_dataset(config.dataset, config.train_split, resolution=config.resolution,
                         batch_size=config.batch_size * config.d_steps,
                         data_dir=config.data_dir, training=True, seed=config.seed)
    curve = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: curve.append(
            (float(logs["d_loss"]), float(logs["g_loss"]), float(logs["d_real"]))))
    inverter.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[record])
    held_out = next(iter(build_dataset(config.dataset, config.eval_split,
                                       resolution=config.resolution, batch_size=64,
                                       data_dir=config.data_dir, training=False)))
    inverter.reset_metrics()
    agreement = float(inverter.test_step(held_out["image"])["agreement"])
    return np.array(curve), agreement


@pytest.mark.slow  # one XLA compile of the train step and 60 steps each way
def test_xla_trains_like_plain_tf(tiny_classifier_path, shapes_data_dir):
    config = testing.tiny_config(tiny_classifier_path, shapes_data_dir, num_steps=60)
    plain, plain_agreement = _loss_curve(config, False, 60)
    xla, xla_agreement = _loss_curve(config, True, 60)
    assert np.isfinite(plain).all() and np.isfinite(xla).all()
    # The same weights and data: D's score of the first real batch agrees to rounding. XLA
    # draws other noise for the same seed (its stateless normal is not TF's CPU kernel), so
    # after that the runs are two draws of one recipe: their losses' running means and their
    # held-out agreement must be of the same size, not equal.
    np.testing.assert_allclose(xla[0, 2], plain[0, 2], rtol=1e-3)
    np.testing.assert_allclose(xla[-10:, :2].mean(0), plain[-10:, :2].mean(0),
                               rtol=0.25, atol=0.5)
    assert abs(xla_agreement - plain_agreement) <= 0.25

