"""The private TensorFlow entry points fenced in `logit_inversion/_tf_private.py`, each checked
for what the package needs of it, against TensorFlow 2.21 (`_tf_private.CHECKED_WITH`).

On another TensorFlow release `test_checked_against_this_tensorflow` fails until every test
here has passed on it and `CHECKED_WITH` names it: a private name that keeps importing can
still stop working, and then training is only slower (the bfloat16 rewrite, the inliner), not
broken."""

import os
import re
import subprocess

import pytest
import tensorflow as tf

from logit_inversion import _tf_private, testing
from logit_inversion.training import cpu_bfloat16

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# bfloat16 keeps 8 significant bits: 1 + 2⁻¹⁰ rounds to 1, in float32 it does not.
_OFF_GRID = 1.0 + 2.0 ** -10


def test_checked_against_this_tensorflow():
    assert _tf_private.CHECKED_WITH == "2.21"
    release = ".".join(tf.__version__.split(".")[:2])
    assert release == _tf_private.CHECKED_WITH, (
        f"TensorFlow {tf.__version__}: logit_inversion/_tf_private.py was checked against "
        f"{_tf_private.CHECKED_WITH}; run tests/test_tf_private.py, tests/test_inline.py and "
        f"tests/test_cpu_bfloat16.py on this release, then set CHECKED_WITH = {release!r}")


def test_function_call_rewrites_set_and_restore_this_threads_options():
    before = _tf_private.function_call_config().SerializeToString()
    with _tf_private.function_call_rewrites(auto_mixed_precision_onednn_bfloat16="ON"):
        options = _tf_private.function_call_config().graph_options.rewrite_options
        assert options.auto_mixed_precision_onednn_bfloat16 == options.ON
    assert _tf_private.function_call_config().SerializeToString() == before
    with pytest.raises(ValueError, match="RewriterConfig has no field 'no_such_pass'"):
        with _tf_private.function_call_rewrites(no_such_pass="ON"):
            pass


@pytest.mark.skipif(not cpu_bfloat16.hardware_supported(),
                    reason="no bfloat16 units on this CPU (amx_bf16 / avx512_bf16)")
def test_function_call_rewrites_reach_the_function_called_inside():
    # The effect, not only the setting: a convolution called inside rounds to bfloat16.
    x = tf.fill((1, 2, 2, 4), _OFF_GRID)
    identity = tf.reshape(tf.eye(4), (1, 1, 4, 4))
    conv = tf.function(lambda a: tf.nn.conv2d(a, identity, 1, "SAME")[0, 0, 0, 0])
    assert float(conv(x)) == _OFF_GRID
    with _tf_private.function_call_rewrites(auto_mixed_precision_onednn_bfloat16="ON"):
        assert float(conv(x)) == 1.0
    assert float(conv(x)) == _OFF_GRID


def test_inline_functions_flattens_nested_calls(tmp_path):
    loaded = tf.saved_model.load(testing.save_tiny_classifier(str(tmp_path / "tiny"),
                                                              input_size=24))
    traced = tf.function(lambda x: loaded(x)).get_concrete_function(
        tf.TensorSpec([None, 24, 24, 3], tf.float32))
    assert "StatefulPartitionedCall" in {n.op for n in traced.graph.as_graph_def().node}
    ops = {node.op for node in _tf_private.inline_functions(traced).node}
    assert "Conv2D" in ops and "ReadVariableOp" in ops
    assert not ops & {"PartitionedCall", "StatefulPartitionedCall"}


def test_profiler_plugin_converts_traces():
    assert callable(_tf_private.profiler_plugin.xspace_to_tools_data)


def test_no_private_tensorflow_or_keras_outside_the_fence():
    # Every private import of the package goes through logit_inversion/_tf_private.py.
    private = re.compile(r"tf\.__internal__|keras\.src|_flatten_lay[e]rs|tensorflow\.python|"
                         r"tensorflow\.core")
    out = subprocess.run(["git", "ls-files", "*.py", "bin/*"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    offenders = []
    for path in out:
        if path.startswith("tests/") or path == "logit_inversion/_tf_private.py":
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
            offenders += [f"{path}:{i}" for i, line in enumerate(f, 1) if private.search(line)]
    assert not offenders, offenders

