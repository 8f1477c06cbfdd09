"""Every private TensorFlow entry point the package uses, fenced in one module.

A private name can move or change meaning in any TensorFlow release, and the code that uses
one usually keeps running, only slower or differently. So nothing else in the package imports
`tensorflow.python`, `tf.__internal__` or `keras.src`: it comes through here, and
`tests/test_tf_private.py` checks each entry against `CHECKED_WITH` and fails loudly on
another version until every entry has been checked again.

- `function_call_rewrites(**fields)`: Grappler rewrites for the functions called in a block,
  through the eager context's function-call options (`tensorflow.python.eager.context`);
  `training/cpu_bfloat16.py` turns oneDNN's bfloat16 rewrite on for the training step.
- `inline_functions(concrete_function)`: Grappler's function inliner
  (`convert_to_constants._run_inline_graph_optimization`); `classifiers/inline.py` inlines a
  loaded classifier's nested calls so XLA keeps its weights as runtime parameters.
- `profiler_plugin`: the profiler's `_pywrap_profiler_plugin`, which turns a trace into the
  per-op table that `benchmarks/train.py` reads.
"""

import contextlib

import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.eager import context
from tensorflow.python.framework import convert_to_constants
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_plugin  # noqa: F401

# The TensorFlow release (major.minor) every entry below was checked against.
CHECKED_WITH = "2.21"


@contextlib.contextmanager
def function_call_rewrites(**fields):
    """Functions called inside run with these Grappler `RewriterConfig` fields set over the
    thread's current function-call options, e.g.
    `function_call_rewrites(auto_mixed_precision_onednn_bfloat16="ON")`.

    The options are the eager context's, which are per thread: other threads' calls are not
    affected. TensorFlow instantiates a function once per set of options, so a function
    called inside is optimized again, once, under these, and called outside it keeps its
    earlier instantiation.
    """
    ctx = context.context()
    previous = ctx.function_call_options
    config = tf.compat.v1.ConfigProto()
    if previous.config_proto_serialized:
        config.ParseFromString(previous.config_proto_serialized)
    options = config.graph_options.rewrite_options
    for name, value in fields.items():
        if not hasattr(options, name):
            raise ValueError(f"RewriterConfig has no field {name!r}. Received: {name}={value!r}")
        setattr(options, name, getattr(rewriter_config_pb2.RewriterConfig, value)
                if isinstance(value, str) else value)
    ctx.function_call_options = context.FunctionCallOptions(config_proto=config)
    try:
        yield
    finally:
        ctx.function_call_options = previous


def function_call_config():
    """This thread's function-call options as a `tf.compat.v1.ConfigProto` (a copy)."""
    config = tf.compat.v1.ConfigProto()
    serialized = context.context().function_call_options.config_proto_serialized
    if serialized:
        config.ParseFromString(serialized)
    return config


def inline_functions(concrete_function):
    """The GraphDef of `concrete_function` with every nested function call inlined."""
    return convert_to_constants._run_inline_graph_optimization(  # pylint: disable=protected-access
        concrete_function, lower_control_flow=False, aggressive_inlining=True)

