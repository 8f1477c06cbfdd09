"""Everything from a config: data, model, optimizers, callbacks, `fit`, final evaluation.

`train(config, workdir)` is what `bin/train` calls. Re-running it on the same workdir
resumes from the newest checkpoint (weights, EMA, optimizer state, step).
"""

import math
import os
import time

from absl import logging
import keras
import numpy as np

from logit_inversion.training import callbacks as callbacks_lib
from logit_inversion import visualize
from logit_inversion.training import checkpoints as checkpointing, strategies as distribute
from logit_inversion.classifiers import load_classifier
from logit_inversion.data.pipeline import build_dataset
from logit_inversion.models.discriminator import Discriminator
from logit_inversion.models.generator import Generator
from logit_inversion.models.inverter import LogitInverter


def build_inverter(config):
    """The `LogitInverter` a config describes, with every variable created."""
    classifier = load_classifier(config.classifier)
    m = config.model
    generator = Generator(
        resolution=config.resolution, ch=m.ch, noise_dim=m.noise_dim, embed_dim=m.embed_dim,
        attention_resolution=m.g_attention, deep=m.deep, multipliers=m.g_multipliers,
        name="generator")
    discriminator = Discriminator(
        resolution=config.resolution, ch=m.ch, attention_resolution=m.d_attention,
        multipliers=m.d_multipliers, name="discriminator")
    inverter = LogitInverter(
        classifier, generator, discriminator, d_steps=config.d_steps,
        ema_decay=config.ema_decay, ema_start=config.ema_start,
        consistency_weight=config.consistency_weight,
        consistency_temperature=config.consistency_temperature,
        pixel_weight=config.pixel_weight)
    inverter.build_all()
    return inverter


def compile_inverter(inverter, config):
    def adam(lr):
        return keras.optimizers.Adam(lr, beta_1=config.beta1, beta_2=config.beta2,
                                     epsilon=1e-6)
    inverter.compile(adam(config.g_lr), adam(config.d_lr),
                     steps_per_execution=config.steps_per_execution,
                     jit_compile=config.jit_compile)


def restore_inverter(workdir):
    """The inverter of a `bin/train` workdir with its newest checkpoint loaded."""
    config = checkpointing.load_config(workdir)
    inverter = build_inverter(config)
    compile_inverter(inverter, config)
    manager = checkpointing.make_manager(inverter, workdir, config.keep_checkpoints)
    if manager.latest_checkpoint is None:
        raise ValueError(f"No checkpoint in workdir {workdir!r}; train first. "
                         f"Received: workdir={workdir!r}")
    manager.checkpoint.restore(manager.latest_checkpoint).expect_partial()
    return inverter


def _train_dataset(config, strategy):
    def make(input_context):
        return build_dataset(config.dataset, config.train_split, resolution=config.resolution,
                             batch_size=config.batch_size * config.d_steps,
                             data_dir=config.data_dir, training=True, seed=config.seed,
                             input_context=input_context)
    return strategy.distribute_datasets_from_function(make)


def _eval_dataset(config, batch_size):
    ds = build_dataset(config.dataset, config.eval_split, resolution=config.resolution,
                       batch_size=batch_size, data_dir=config.data_dir, training=False)
    return ds.take(max(config.eval_examples // batch_size, 1))


def evaluate(inverter, config, workdir, images):
    """Held-out agreement, and the labelled reconstruction grid of `images` (the run's fixed
    eval batch, already read once for TensorBoard)."""
    eval_batch = min(100, config.eval_examples)
    eval_ds = _eval_dataset(config, eval_batch)
    # Cardinality is unknown after filtering decoders, so count (cheap next to evaluating).
    n_batches = sum(1 for _ in eval_ds)
    if n_batches == 0:
        raise ValueError(f"Eval split {config.eval_split!r} of {config.dataset!r} has fewer "
                         f"than {eval_batch} images.")
    result = inverter.evaluate(eval_ds, verbose=0, return_dict=True)
    logits = inverter.classifier(images)
    recon = inverter.generate(logits, inverter.sample_noise(len(images), seed=(1, 2)))
    recon_logits = inverter.classifier(recon)
    names = inverter.classifier.spec.class_names
    label = (lambda i: names[i]) if names else str
    grid = visualize.labelled_grid(
        images.numpy(), recon.numpy(),
        [label(int(i)) for i in np.argmax(logits, -1)],
        [label(int(i)) for i in np.argmax(recon_logits, -1)])
    grid_path = os.path.join(workdir, "reconstructions.png")
    grid.save(grid_path + ".tmp.png")
    os.replace(grid_path + ".tmp.png", grid_path)
    return {"agreement": float(result["agreement"]), "eval_examples": n_batches * eval_batch,
            "eval_split": config.eval_split}


def train(config, workdir, strategy="default", tpu=None, verbose=1):
    """Trains (or resumes) an inverter in `workdir`; returns and writes `metrics.json`."""
    strategy = distribute.get_strategy(strategy, tpu)   # bad name / no TPU: fail first
    checkpointing.check_compatible(workdir, config)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if config.num_steps % config.checkpoint_every or config.checkpoint_every % config.steps_per_execution:
        raise ValueError(
            "num_steps must be a multiple of checkpoint_every, itself a multiple of "
            f"steps_per_execution. Received: num_steps={config.num_steps}, "
            f"checkpoint_every={config.checkpoint_every}, "
            f"steps_per_execution={config.steps_per_execution}")
    keras.utils.set_random_seed(config.seed)
    # Reading the fixed batch first makes a bad dataset name fail before anything is written.
    fixed = next(iter(_eval_dataset(config, config.num_images)))["image"]
    os.makedirs(workdir, exist_ok=True)

    with strategy.scope():
        inverter = build_inverter(config)
        compile_inverter(inverter, config)
    manager = checkpointing.make_manager(inverter, workdir, config.keep_checkpoints)
    if manager.latest_checkpoint:
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s", manager.latest_checkpoint)
    start_step = int(inverter.g_optimizer.iterations.numpy())
    checkpointing.record_config(workdir, config)
    print(f"logit_inversion: training in {workdir} from step {start_step} "
          f"to {config.num_steps} on {strategy.num_replicas_in_sync} replica(s)", flush=True)

    guard = callbacks_lib.NanGuard()
    throughput = callbacks_lib.Throughput(config.steps_per_execution)
    cbs = [guard, callbacks_lib.Checkpointer(manager, guard), throughput,
           callbacks_lib.TensorBoardLogger(os.path.join(workdir, "tensorboard"), fixed)]
    epochs = config.num_steps // config.checkpoint_every
    initial_epoch = start_step // config.checkpoint_every
    start = time.perf_counter()
    if initial_epoch < epochs:
        inverter.fit(_train_dataset(config, strategy), epochs=epochs,
                     initial_epoch=initial_epoch, steps_per_epoch=config.checkpoint_every,
                     callbacks=cbs, verbose=verbose)
    if guard.failure is not None:
        key, value, step = guard.failure
        last = manager.latest_checkpoint or "none yet"
        raise FloatingPointError(
            f"{key} became {value} at step {step}; training stopped. The last good "
            f"checkpoint ({last}) is kept; lower the learning rates or resume from it.")

    metrics = evaluate(inverter, config, workdir, fixed)
    global_batch = config.batch_size * config.d_steps
    metrics.update({
        "steps": int(inverter.g_optimizer.iterations.numpy()),
        "steps_per_second": throughput.steps_per_second,
        "images_per_second": throughput.steps_per_second * global_batch,
        "train_seconds_this_run": time.perf_counter() - start,
        "classifier": config.classifier, "dataset": config.dataset,
    })
    metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
               for k, v in metrics.items()}
    checkpointing.write_json_atomic(os.path.join(workdir, "metrics.json"), metrics)
    print(f"logit_inversion: held-out agreement {metrics['agreement']:.3f} on "
          f"{metrics['eval_examples']} images; outputs in {workdir}: metrics.json, "
          "reconstructions.png, tensorboard/, checkpoints/", flush=True)
    return metrics
