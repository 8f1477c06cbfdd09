"""oneDNN's bfloat16 rewrite of the training step, for CPUs with bfloat16 matrix units.

On a CPU with AMX-BF16 (Intel Sapphire Rapids and later) or AVX512-BF16, oneDNN multiplies
bfloat16 matrices several times faster than float32: on the 2-core Xeon VM of 2026-12-02 a
4096² matmul ran at 1,187 against 318 GFLOP/s, a 3×3 convolution 64 → 64 channels on 16 px
maps (batch 64) at 985 against 281. Keras's "mixed_bfloat16" policy reaches G and D but not
the frozen classifier, a loaded SavedModel whose graph is float32, which the consistency term
runs forward and backward every step. Grappler's `auto_mixed_precision_onednn_bfloat16` pass
rewrites whatever graph it optimizes, the classifier's function bodies included.

The pass is turned on only for calls of the training function. TensorFlow passes the
function-call options with each call and instantiates a function once per set of options,
so evaluation, probes, standing statistics and the export, called outside, stay float32.
Variables and optimizer slots stay float32 either way: the pass only changes the dtypes
flowing between ops. Convolutions (and the elementwise ops between them) take bfloat16
inputs; matrix products are kept float32 (`FLOAT32_OPS`), because the logits flow through
them. The result of a training step is therefore not bit-equal to float32's; what that does
to training is measured, not assumed (README, "Benchmarks").

Without these units the bfloat16 kernels have nothing to run fast on, so the setting "auto"
(`config.cpu_bfloat16`) turns the rewrite on only where `/proc/cpuinfo` lists `amx_bf16`
or `avx512_bf16`.
"""

import contextlib
import os

import tensorflow as tf

from logit_inversion import _tf_private

SETTINGS = ("auto", "on", "off")
_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# Matrix products stay float32. Rounded to bfloat16, the logits lose all but ~3 significant
# digits on their way into the projections of G and D, and out of the classifier's last
# layer. With them rounded the demo's held-out agreement stalled near 0.80–0.85 to step
# 1,600 for seeds 0 and 1; with them float32, seed 0 held 0.98–0.99 from step 1,100 on
# (2026-12-02, README "Benchmarks"). Their FLOPs are a small part of the step.
FLOAT32_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "_MklMatMul")
_REMOVE_VARIABLE = "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE"


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU feature flags the kernel reports (an empty set where it does not)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def hardware_supported(flags=None):
    """True when this CPU has bfloat16 matrix units, oneDNN is on, and no GPU would run
    the step instead."""
    flags = cpu_flags() if flags is None else flags
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") not in ("0", "false", "False")
    return (onednn and any(f in flags for f in _CPU_FLAGS)
            and not tf.config.list_physical_devices("GPU"))


def resolve(setting, flags=None, strategy=None):
    """`config.cpu_bfloat16` ("auto", "on" or "off") as a bool; another value raises, and so
    does "on" under a TPU `strategy` (there `config.mixed_precision` is the bfloat16 switch)."""
    if setting not in SETTINGS:
        raise ValueError(f"cpu_bfloat16 must be one of 'auto', 'on' or 'off'. "
                         f"Received: cpu_bfloat16={setting!r}")
    on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    if setting == "on" and on_tpu:
        raise ValueError("cpu_bfloat16='on' rewrites a CPU training step; on a TPU set "
                         "mixed_precision=True instead. Received: cpu_bfloat16='on' with "
                         "strategy=TPUStrategy")
    if setting == "auto":
        return not on_tpu and hardware_supported(flags)
    return setting == "on"


@contextlib.contextmanager
def rewrite():
    """Functions called inside run under oneDNN's bfloat16 rewrite, with `FLOAT32_OPS` taken
    off the pass's list of ops to convert. A function is rewritten once, at its first call
    under these options; later calls reuse that instantiation.

    The rewrite is turned on for this thread's calls only (`_tf_private.function_call_rewrites`).
    The list of ops the pass keeps float32 has no per-call option: TensorFlow reads it from a
    process environment variable when the pass runs, so that variable holds `FLOAT32_OPS` for
    the duration of the block, for every thread, and is then restored. It changes nothing
    for a thread that does not run the pass (no other code of this package does).
    """
    saved = os.environ.get(_REMOVE_VARIABLE)
    removed = [op for op in (saved or "").split(",") if op] + list(FLOAT32_OPS)
    with _tf_private.function_call_rewrites(auto_mixed_precision_onednn_bfloat16="ON"):
        os.environ[_REMOVE_VARIABLE] = ",".join(removed)
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop(_REMOVE_VARIABLE, None)
            else:
                os.environ[_REMOVE_VARIABLE] = saved


def scoped(function):
    """`function`, each call of which runs under `rewrite()`."""
    if getattr(function, "_cpu_bfloat16", False):
        return function

    def call(*args, **kwargs):
        with rewrite():
            return function(*args, **kwargs)

    call._cpu_bfloat16 = True
    return call
