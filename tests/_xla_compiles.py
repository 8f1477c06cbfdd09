"""Calls jit-compiled train and test steps three times each and writes, per step, how often
XLA compiled it and how many variable reads it lowered as constants (read from XLA's dump).

Run as a subprocess (XLA reads its dump flag once per process):
`python tests/_xla_compiles.py OUT.json DATA_DIR VARIANT...`, a variant being
`OBJECTIVE-POLICY`, e.g. `consistency-float32` or `hinge-mixed_bfloat16`.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from logit_inversion.benchmarks import xla_dump  # noqa: E402  (imports no TensorFlow)

DUMP = tempfile.mkdtemp(prefix="xla_dump_")
# LLVM at -O0: what is counted (compiles, and constants in the HLO before XLA's optimisation)
# is decided before machine code is generated, and unoptimised code generation takes about a
# quarter less of this script's CPU time.
os.environ["XLA_FLAGS"] = xla_dump.dump_flags(DUMP) + " --xla_backend_optimization_level=0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from logit_inversion import testing, training  # noqa: E402

# Each objective's weights: the paper's hinge only, and each extra term that the package's
# recipes add (the consistency and feature terms differentiate the frozen classifier).
OBJECTIVES = {
    "hinge": {"consistency_weight": 0.0},
    # From the first step: the tiny config inherits the demo's late start, which would leave
    # the classifier's backward pass in a branch that these three steps never take.
    "consistency": {"consistency_weight": 0.3, "consistency_start": 0},
    "pixel": {"consistency_weight": 0.0, "pixel_weight": 1.0},
    "feature": {"consistency_weight": 0.0, "feature_weight": 1.0, "feature_layer": "logits"},
}
CALLS = 3


def _step(inverter, method, name):
    def step(images):
        return getattr(inverter, method)(images)
    step.__name__ = name
    return tf.function(step, jit_compile=True)


def run(variant, classifier, data_dir):
    objective, policy = variant.split("-")
    keras.mixed_precision.set_global_policy(policy)
    try:
        config = testing.tiny_config(classifier, data_dir, **OBJECTIVES[objective])
        inverter = training.build_inverter(config)
        training.compile_inverter(inverter, config)
        images = tf.random.stateless_uniform((8, 32, 32, 3), (0, 1), -1.0, 1.0)
        tag = variant.replace("-", "_")
        result = {}
        for method in ("train_step", "test_step"):
            name = f"xlacount_{method}_{tag}"
            step = _step(inverter, method, name)
            for _ in range(CALLS):
                logs = step(images)
            result[method] = {**xla_dump.summary(DUMP, name),
                              "finite": all(bool(tf.math.is_finite(v)) for v in logs.values())}
        result["g_steps"] = int(inverter.g_optimizer.iterations)
        return result
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main(out, data_dir, *variants):
    # The classifier takes 24 px images: G draws 32 px, so the frozen classifier resizes.
    classifier = testing.save_tiny_classifier(os.path.join(DUMP, "clf24"), input_size=24)
    results = {variant: run(variant, classifier, data_dir) for variant in variants}
    with open(out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
