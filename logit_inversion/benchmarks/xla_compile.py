"""The program a TPU would compile, lowered here: the paper-scale train steps under XLA.

For the imagenet64 and imagenet128 configs, the jit-compiled `LogitInverter.train_step` is
lowered to HLO (TensorFlow → XLA, the part of compilation that decides what is a parameter
and what a constant) without running it, with a stand-in classifier of ResNet-50's shape
(Keras `ResNet50`, random weights, 1001 logits at 224 px, saved and reloaded as a SavedModel
so it takes the same path as a TF Hub model; nothing is downloaded). Each config is lowered
hinge-only (the paper) and with the logit-consistency term (which differentiates the
classifier). Reported per case: lowering seconds, HLO instructions, entry parameters, and
the variable reads lowered as constants (must be 0: a constant weight would make every
update a new program). With `optimize=True` the CPU backend also compiles the module, which
takes far longer and says little about a TPU's compile.

Example:
    >>> from logit_inversion.benchmarks import xla_compile
    >>> xla_compile.run({"configs": "imagenet64", "objectives": "hinge"})
"""

import json
import os
import tempfile
import time

DEFAULTS = {"configs": "imagenet64,imagenet128", "objectives": "hinge,consistency",
            "batch_size": 8, "optimize": False}
OBJECTIVES = {"hinge": 0.0, "consistency": 0.3}


def save_resnet50_standin(path):
    """Writes a randomly initialised ResNet-50 (224 px, 1001 logits, pixels in [0, 1]) as a
    SavedModel with `metadata.json` to `path`; returns `path`."""
    import keras
    import tensorflow as tf

    model = keras.applications.ResNet50(weights=None, classes=1001,
                                        classifier_activation=None)
    module = tf.Module()
    module.model = model
    module.__call__ = tf.function(
        lambda images: model(images * 255.0 - 127.5, training=False),
        input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32)])
    tf.saved_model.save(module, path)
    with open(os.path.join(path, "metadata.json"), "w") as f:
        json.dump({"input_size": 224, "value_range": [0.0, 1.0], "num_classes": 1001,
                   "has_background": True}, f)
    return path


def _config(name, classifier, batch_size, consistency_weight):
    from logit_inversion.configs import imagenet64, imagenet128

    config = {"imagenet64": imagenet64, "imagenet128": imagenet128}[name].get_config()
    config.classifier = classifier
    config.batch_size = batch_size
    config.consistency_weight = consistency_weight
    config.preflight.enabled = False
    return config


def lower(config, optimize=False):
    """Lowers `config`'s jit-compiled train step; returns the case's figures."""
    import keras
    import tensorflow as tf

    from logit_inversion import training
    from logit_inversion.benchmarks import xla_dump

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if config.mixed_precision else "float32")
    try:
        inverter = training.build_inverter(config)
        training.compile_inverter(inverter, config)
        batch = config.batch_size * config.d_steps
        images = tf.zeros((batch, config.resolution, config.resolution, 3))
        step = tf.function(inverter.train_step, jit_compile=True)
        start = time.perf_counter()
        hlo = step.experimental_get_compiler_ir(images)(stage="hlo")
        seconds = time.perf_counter() - start
        result = {
            "lowering_seconds": round(seconds, 1),
            "hlo_instructions": sum(1 for line in hlo.splitlines() if " = " in line),
            "hlo_characters": len(hlo),
            "entry_parameters": hlo.split("->", 1)[0].count("]{"),
            "constant_variable_reads": len(xla_dump.constant_variable_reads(hlo)),
            "variables": len(inverter.variables),
            "batch_size": config.batch_size, "d_steps": config.d_steps,
            "dtype_policy": keras.mixed_precision.global_policy().name}
        if optimize:
            start = time.perf_counter()
            step.experimental_get_compiler_ir(images)(stage="optimized_hlo")
            result["cpu_compile_seconds"] = round(time.perf_counter() - start, 1)
        return result
    finally:
        keras.mixed_precision.set_global_policy(previous)


def run(args=None):
    """`bin/benchmark xla_compile`: lowering figures of each config × objective.

    Args:
        args: overrides of `DEFAULTS`: configs ("imagenet64,imagenet128"), objectives
            ("hinge,consistency"), batch_size (global, per D step), optimize (bool).
    """
    import tensorflow as tf

    options = {**DEFAULTS, **(args or {})}
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown xla_compile options {sorted(unknown)}; known: "
                         f"{sorted(DEFAULTS)}. Received: args={args}")
    configs = [c for c in str(options["configs"]).split(",") if c]
    objectives = [o for o in str(options["objectives"]).split(",") if o]
    bad = [c for c in configs if c not in ("imagenet64", "imagenet128")]
    bad += [o for o in objectives if o not in OBJECTIVES]
    if bad or not configs or not objectives:
        raise ValueError("configs must be a subset of imagenet64,imagenet128 and objectives of "
                         f"hinge,consistency. Received: configs={options['configs']!r}, "
                         f"objectives={options['objectives']!r}")
    results = {"machine": {"cpus": os.cpu_count(), "tensorflow": tf.__version__,
                           "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())},
               "classifier": "ResNet-50 stand-in (random weights, 224 px, 1001 logits)"}
    with tempfile.TemporaryDirectory() as folder:
        classifier = save_resnet50_standin(os.path.join(folder, "resnet50"))
        for name in configs:
            for objective in objectives:
                config = _config(name, classifier, options["batch_size"], OBJECTIVES[objective])
                results[f"{name}/{objective}"] = lower(config, options["optimize"])
    return results


def table(result):
    """Plain-text table of `run`'s result."""
    lines = [f"{result['classifier']}; TF {result['machine']['tensorflow']}",
             f"{'case':<26} {'lower s':>8} {'HLO instr':>10} {'params':>7} {'const reads':>11}"]
    for case, r in result.items():
        if case in ("machine", "classifier"):
            continue
        lines.append(f"{case:<26} {r['lowering_seconds']:>8.1f} {r['hlo_instructions']:>10,} "
                     f"{r['entry_parameters']:>7} {r['constant_variable_reads']:>11}"
                     + (f"  CPU compile {r['cpu_compile_seconds']} s"
                        if "cpu_compile_seconds" in r else ""))
    return "\n".join(lines)
