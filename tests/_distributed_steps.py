"""Runs a few tiny train steps in a fresh process (device and dtype settings are global).

usage: _distributed_steps.py MODE CLASSIFIER DATA_DIR WORKDIR   MODE ∈ mirrored, jit, jit_bf16
Prints one JSON line per run: the last logs, and for `mirrored` the largest difference
between the two replicas' copies of every variable, plus the checks of `replica_checks`
(noise per replica, variable aggregation, held-out metrics, standing statistics) and of
`held_out_evaluation` (`bin/train`'s final evaluation on one device and on both, written
under WORKDIR). MODE `jit`
also runs `jit_bf16` after it (the dtype policy can be switched within a process; the
device layout cannot).
"""

import json
import os
import sys

import tensorflow as tf

mode, classifier, data_dir, workdir = sys.argv[1:5]
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from logit_inversion import testing, training  # noqa: E402
from logit_inversion.models.generator import Generator  # noqa: E402
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
        result.update(replica_checks(inverter, strategy))
        result["held_out_evaluation"] = held_out_evaluation(inverter, strategy)
    print("RESULT " + json.dumps(dict(result, mode=mode)))


def _local(values):
    return [t.numpy() for t in tf.distribute.get_strategy().experimental_local_results(values)]


def replica_checks(inverter, strategy):
    """What two replicas must (not) share, and held-out metrics that count every image."""
    out = {}
    with strategy.scope():
        # Noise: a pure function of (seed, step, global replica id).
        def draw(step):
            return _local(strategy.run(lambda: inverter._noise(4, 0, tf.constant(step))))
        first, again, later = draw(7), draw(7), draw(8)
    out["noise_replicas_differ"] = bool(not np.allclose(first[0], first[1]))
    out["noise_repeats"] = bool(all(np.array_equal(a, b) for a, b in zip(first, again)))
    out["noise_steps_differ"] = bool(not np.allclose(first[0], later[0]))

    # Replica-identical state is aggregated from the first replica, not all-reduced.
    state = [v for model in (inverter.generator, inverter.ema_generator,
                             inverter.discriminator)
             for v in model.weights if v.name in ("sn_u", "moving_mean", "moving_var")]
    out["num_replica_identical"] = len(state)
    out["aggregations"] = sorted({v.value.aggregation.name for v in state})

    # Held-out metrics on 9 images in batches of 4: the last batch leaves replica 1 empty.
    # Zero noise, so that the single-device reference sees the same reconstructions.
    zeros = lambda n, stream, counter: tf.zeros((n, inverter.noise_dim))  # noqa: E731
    inverter._noise = zeros
    images = tf.random.stateless_uniform((9, 32, 32, 3), (5, 6), -1.0, 1.0)
    reported = inverter.evaluate(tf.data.Dataset.from_tensor_slices(images).batch(4),
                                 verbose=0, return_dict=True)
    # Single device (outside the strategy scope), all 9 images at once.
    logits = inverter.classifier(images)
    recon = inverter.generate(logits, zeros(9, None, None))
    matches = np.argmax(logits, -1) == np.argmax(inverter.classifier(recon), -1)
    real, fake = np.split(inverter.discriminator(tf.concat([images, recon], 0),
                                                 tf.concat([logits, logits], 0)).numpy(), 2)
    expected = {"agreement": matches.mean(), "d_real": real.mean(), "d_fake": fake.mean(),
                "d_loss": (np.maximum(1 - real, 0) + np.maximum(1 + fake, 0)).mean(),
                "g_loss": -fake.mean()}
    out["eval_reported"] = {k: float(v) for k, v in reported.items()}
    out["eval_expected"] = {k: float(v) for k, v in expected.items()}
    del inverter._noise

    # Standing statistics under the strategy: equal on both replicas' copies.
    batches = [tf.random.stateless_uniform((8, 32, 32, 3), (i, 3), -1.0, 1.0) for i in range(2)]
    with strategy.scope():
        out["standing_batches"] = inverter.accumulate_standing_stats(batches, 2)
    copies = [[t.numpy() for t in v.value.values] for v in inverter.ema_generator.weights
              if v.name in ("moving_mean", "moving_var")]
    out["standing_replica_difference"] = max(float(np.max(np.abs(a - b))) for a, b in copies)
    out["standing_finite"] = bool(all(np.isfinite(a).all() for a, _ in copies))
    return out


def held_out_evaluation(mirrored, strategy):
    """`trainer.evaluate` (agreement, standing statistics, per-class report) of the mirrored
    inverter and of a single-device copy of its weights, on the same 44 images in one eval
    batch of 22 per replica: replica 0's share alone would be another number than the mean
    over both."""
    config = testing.tiny_config(classifier, data_dir, eval_examples=44,
                                 standing_stats_batches=2)
    single = training.build_inverter(config)
    training.compile_inverter(single, config)
    for name in ("generator", "ema_generator", "discriminator"):
        getattr(single, name).set_weights(getattr(mirrored, name).get_weights())
    # ε is drawn per replica by design, so one device and two replicas reconstruct the same
    # image from different noise. Zero it: the agreement then depends on the images alone,
    # and any difference left is the metric's aggregation across replicas.
    call = Generator.call
    Generator.call = lambda self, logits, noise, training=False: call(
        self, logits, noise * 0.0, training=training)
    try:
        images = next(iter(trainer._eval_dataset(config, config.num_images)))["image"]
        out = {"replicas": strategy.num_replicas_in_sync,
               "eval_batch": trainer.eval_batch_size(config, strategy.num_replicas_in_sync)}
        for key, inverter in (("single", single), ("mirrored", mirrored)):
            os.makedirs(os.path.join(workdir, key))
            out[key] = trainer.evaluate(inverter, config, os.path.join(workdir, key), images)
    finally:
        Generator.call = call
    return out


for m in (["jit", "jit_bf16"] if mode == "jit" else [mode]):
    run(m)
