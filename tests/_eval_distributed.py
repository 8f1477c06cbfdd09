"""Held-out agreement of one inverter, evaluated on one device and under MirroredStrategy
over two logical CPUs, on the same images (a fresh process: the device layout is global).

usage: _eval_distributed.py CLASSIFIER DATA_DIR WORKDIR
Prints one line `RESULT {json}` with both evaluations' metrics.
"""

import json
import os
import sys

import tensorflow as tf

classifier, data_dir, workdir = sys.argv[1:4]
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from logit_inversion import testing, training  # noqa: E402
from logit_inversion.models.generator import Generator  # noqa: E402
from logit_inversion.training import trainer  # noqa: E402

# ε is drawn per replica by design, so one device and two replicas reconstruct the same
# image from different noise. Zero it: the agreement then depends on the images alone, and
# any difference left is the metric's aggregation across replicas.
_call = Generator.call
Generator.call = lambda self, logits, noise, training=False: _call(
    self, logits, noise * 0.0, training=training)

# 44 images in one eval batch of 22 per replica: replica 0's share alone would be a
# different number from the mean over both.
config = testing.tiny_config(classifier, data_dir, eval_examples=44, standing_stats_batches=2)
single = training.build_inverter(config)
training.compile_inverter(single, config)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = training.build_inverter(config)
    training.compile_inverter(mirrored, config)
for name in ("generator", "ema_generator", "discriminator"):
    getattr(mirrored, name).set_weights(getattr(single, name).get_weights())

images = next(iter(trainer._eval_dataset(config, config.num_images)))["image"]
result = {"replicas": strategy.num_replicas_in_sync,
          "eval_batch": trainer.eval_batch_size(config, strategy.num_replicas_in_sync)}
for key, inverter in (("single", single), ("mirrored", mirrored)):
    os.makedirs(os.path.join(workdir, key))
    result[key] = trainer.evaluate(inverter, config, os.path.join(workdir, key), images)
print("RESULT " + json.dumps(result))
