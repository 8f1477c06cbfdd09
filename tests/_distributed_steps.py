"""Runs a few tiny train steps in a fresh process (device and dtype settings are global).

usage: _distributed_steps.py MODE CLASSIFIER DATA_DIR   MODE ∈ mirrored, jit, jit_bf16
Prints one JSON line per run: the last logs, and for `mirrored` the largest difference
between the two replicas' copies of every variable. MODE `jit` also runs `jit_bf16` after
it (the dtype policy can be switched within a process; the device layout cannot).
"""

import json
import sys

import tensorflow as tf

mode, classifier, data_dir = sys.argv[1:4]
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from logit_inversion import testing, training  # noqa: E402
from logit_inversion.training import trainer  # noqa: E402


def run(mode):
    config = testing.tiny_config(classifier, data_dir)
    if mode == "jit_bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        config.mixed_precision = True
    config.jit_compile = mode.startswith("jit")
    config.steps_per_execution = 2 if mode.startswith("jit") else 1
    strategy = (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if mode == "mirrored"
                else tf.distribute.get_strategy())
    with strategy.scope():
        inverter = training.build_inverter(config)
        training.compile_inverter(inverter, config)
    history = inverter.fit(trainer._train_dataset(config, strategy), epochs=1, steps_per_epoch=4,
                           verbose=0)
    result = {"logs": {k: float(v[-1]) for k, v in history.history.items()},
              "replicas": strategy.num_replicas_in_sync,
              "g_steps": int(inverter.g_optimizer.iterations.numpy()),
              "compute_dtype": inverter.generator.compute_dtype}
    if mode == "mirrored":
        diffs = []
        for model in (inverter.generator, inverter.ema_generator, inverter.discriminator):
            for v in model.weights:
                copies = [t.numpy() for t in v.value.values]
                diffs.append(float(np.max(np.abs(copies[0] - copies[1]))))
        result["max_replica_difference"] = max(diffs)
        result["num_variables"] = len(diffs)
    print("RESULT " + json.dumps(dict(result, mode=mode)))


for m in (["jit", "jit_bf16"] if mode == "jit" else [mode]):
    run(m)
