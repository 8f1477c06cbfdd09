"""Everything from a config: data, model, optimizers, callbacks, `fit`, final evaluation.

`train(config, workdir)` is what `bin/train` calls. Re-running it on the same workdir
resumes from the newest checkpoint (weights, EMA, optimizer state, step).
"""

import hashlib
import math
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from logit_inversion.training import callbacks as callbacks_lib
from logit_inversion.training import class_report
from logit_inversion import files, visualize
from logit_inversion.training import checkpoints as checkpointing, strategies as distribute
from logit_inversion.training import cpu_bfloat16, schedules
from logit_inversion.classifiers import frozen, load_classifier
from logit_inversion.classifiers import preflight
from logit_inversion.classifiers.features import load_conditioning
from logit_inversion.configs import validation
from logit_inversion.data.pipeline import build_dataset, stream_seed
from logit_inversion.models import arch
from logit_inversion.models.discriminator import Discriminator
from logit_inversion.models.generator import Generator
from logit_inversion.models.inverter import LogitInverter


def _feature_extractor(config, classifier=None):
    """The comparator of the optional feature loss (`configs/dosovitskiy_brox.py`), or None;
    from `classifier` (the loaded Φ) when given, rather than a second load of its file."""
    if not config.feature_weight:
        return None
    from logit_inversion.classifiers.features import load_feature_extractor
    return load_feature_extractor(config.classifier, config.feature_layer, config.classifier_spec,
                                  classifier=classifier)


def load_frozen_classifier(config):
    """Φ of a config, loaded once: `build_inverter`, the pre-flight check and the feature
    loss of a run all take this one object."""
    return load_classifier(config.classifier, config.classifier_spec)


def build_inverter(config, classifier=None):
    """The `LogitInverter` a config describes, with every variable created.

    Args:
        config: a training config.
        classifier: Φ already loaded by `load_frozen_classifier(config)`; default: loaded here.
    """
    if classifier is None:
        classifier = load_frozen_classifier(config)
    # The conditioning vector: the logits, or another layer of the classifier (then
    # `classifier.logits` still gives the logits, on which agreement is measured).
    conditioning = load_conditioning(config.classifier, config.conditioning.layer,
                                     config.classifier_spec, config.conditioning.size,
                                     classifier=classifier)
    m = config.model
    generator = Generator(
        resolution=config.resolution, ch=m.ch, noise_dim=m.noise_dim, embed_dim=m.embed_dim,
        attention_resolution=m.g_attention, deep=m.deep, multipliers=m.g_multipliers,
        logit_scale=m.logit_scale, name="generator")
    discriminator = Discriminator(
        resolution=config.resolution, ch=m.ch, attention_resolution=m.d_attention,
        multipliers=m.d_multipliers, logit_scale=m.logit_scale, name="discriminator")
    inverter = LogitInverter(
        conditioning, generator, discriminator, d_steps=config.d_steps,
        ema_decay=config.ema_decay, ema_start=config.ema_start,
        consistency_weight=config.consistency_weight,
        consistency_start=config.consistency_start, r1_weight=config.r1_weight,
        consistency_temperature=config.consistency_temperature,
        pixel_weight=config.pixel_weight, seed=config.seed,
        diversity_weight=config.diversity_weight, diversity_clip=config.diversity_clip,
        deterministic=config.deterministic, feature_weight=config.feature_weight,
        feature_extractor=_feature_extractor(config, classifier),
        agreement_every=config.train_agreement_every)
    inverter.build_all()
    return inverter


def compile_inverter(inverter, config):
    def adam(lr):
        return keras.optimizers.Adam(lr, beta_1=config.beta1, beta_2=config.beta2,
                                     epsilon=1e-6)
    bfloat16 = cpu_bfloat16.resolve(config.cpu_bfloat16, strategy=inverter.distribute_strategy)
    g_lr = schedules.learning_rate(config.g_lr, config.num_steps, config.lr_decay_from)
    d_lr = schedules.learning_rate(config.d_lr, config.num_steps, config.lr_decay_from,
                                   steps_per_generator_step=config.d_steps)
    inverter.compile(adam(g_lr), adam(d_lr),
                     steps_per_execution=config.steps_per_execution,
                     jit_compile=config.jit_compile,
                     train_function_wrapper=cpu_bfloat16.scoped if bfloat16 else None)
    if isinstance(inverter.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _logs_as_vectors(inverter)


def _logs_as_vectors(inverter):
    """Works around Keras 3 under MultiWorkerMirroredStrategy: it reduces every step's logs
    with `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars ("Invalid reduction
    dimension 0 for input with 0 dimensions"; tensorflow/tensorflow#72388). Logs of shape
    [1] reduce to the scalar cross-replica mean."""
    cls = type(inverter)

    def vectors(step):
        return lambda data: {k: tf.reshape(v, [1]) for k, v in step(inverter, data).items()}

    inverter.train_step = vectors(cls.train_step)
    inverter.test_step = vectors(cls.test_step)


def restore_inverter(workdir):
    """The inverter of a `bin/train` workdir with its newest checkpoint loaded; a ValueError
    naming them when that checkpoint misses any variable of the EMA generator."""
    config = checkpointing.load_config(workdir)
    inverter = build_inverter(config)
    compile_inverter(inverter, config)
    manager = checkpointing.make_manager(inverter, workdir, config.keep_checkpoints)
    if manager.latest_checkpoint is None:
        raise ValueError(f"No checkpoint in workdir {workdir!r}; train first. "
                         f"Received: workdir={workdir!r}")
    # The one checkpoint-coverage policy of every reader of a workdir (analyses, evaluation,
    # reconstructions, export, explorer): refuse a checkpoint that misses a variable of G_ema.
    checkpointing.check_covers_generator(manager.latest_checkpoint, inverter, workdir)
    manager.checkpoint.restore(manager.latest_checkpoint).expect_partial()
    apply_standing_stats(inverter, config)
    return inverter


def apply_standing_stats(inverter, config):
    """BigGAN's standing statistics: G_ema's batch-norm statistics recomputed from
    training-mode passes over `config.standing_stats_batches` batches of training images
    (the same, in order, on every worker). Returns the number of batches used."""
    num_batches = config.standing_stats_batches
    if not num_batches:
        return 0
    ds = build_dataset(config.dataset, config.train_split, resolution=config.resolution,
                       batch_size=config.batch_size, data_dir=config.data_dir, training=False)
    # In the model's strategy: the batch-norm statistics are synchronized across replicas
    # (and workers, so every worker must call this with the same batches).
    with inverter.distribute_strategy.scope():
        used = inverter.accumulate_standing_stats(ds, num_batches)
    logging.info("Standing statistics of G_ema from %d training batches of %d images",
                 used, config.batch_size)
    return used


def _train_dataset(config, strategy, start_step=0):
    """The training stream of a run that starts at `start_step`: its order is drawn from
    (config.seed, start_step), so a resumed run sees new batches, not the first ones again."""
    seed = stream_seed(config.seed, start_step)

    def make(input_context):
        ds = build_dataset(config.dataset, config.train_split, resolution=config.resolution,
                           batch_size=config.batch_size * config.d_steps,
                           data_dir=config.data_dir, training=True, seed=seed,
                           input_context=input_context)
        return ds.map(_images_only)
    return strategy.distribute_datasets_from_function(make)


@tf.autograph.experimental.do_not_convert   # plain Python: nothing to convert
def _images_only(example):
    # Keras feeds `fit`/`evaluate` only images: under MultiWorkerMirroredStrategy its first
    # (symbolic-build) batch goes through `strategy.reduce`, which rejects a dict of
    # per-replica values ("Attempt to convert a value ({'image': PerReplica...").
    return example["image"]


def _eval_dataset(config, batch_size):
    ds = build_dataset(config.dataset, config.eval_split, resolution=config.resolution,
                       batch_size=batch_size, data_dir=config.data_dir, training=False)
    options = tf.data.Options()
    # Every worker reads the same ordered files and keeps its share of the batches; file
    # sharding would fail on single-file splits.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.take(max(config.eval_examples // batch_size, 1)).with_options(options)


def _check_eval_split(config, num_replicas):
    """One line, before anything is written, when the held-out split has fewer images than
    the fixed grid (`num_images`) or one evaluation batch needs (e.g. a small folder's slice)."""
    eval_batch = eval_batch_size(config, num_replicas)
    needed = {"num_images": (config.num_images, f"the fixed grid (num_images="
                                                f"{config.num_images})"),
              "eval_examples": (eval_batch, f"one evaluation batch ({eval_batch} images, "
                                            f"from eval_examples={config.eval_examples})")}
    ds = build_dataset(config.dataset, config.eval_split, resolution=config.resolution,
                       batch_size=1, data_dir=config.data_dir, training=False)
    available = sum(1 for _ in ds.take(max(n for n, _ in needed.values())))
    short = [key for key, (n, _) in needed.items() if n > available]
    if short:
        raise ValueError(
            f"The eval split {config.eval_split!r} of {config.dataset!r} holds {available} "
            f"images, fewer than {' and '.join(needed[k][1] for k in short)} need; hold out a "
            f"larger slice (e.g. --config.train_split='train[:80%]' "
            f"--config.eval_split='train[80%:]') or set "
            f"{' and '.join(f'--config.{k}' for k in short)} to at most {available}. Received: "
            f"eval_split={config.eval_split}, "
            + ", ".join(f"{k}={config[k]}" for k in short))


def eval_batch_size(config, num_replicas):
    """Up to 100 images per eval step, a multiple of the replica count (so every replica
    gets the same share)."""
    return max(min(100, config.eval_examples) // num_replicas, 1) * num_replicas


def _is_chief(strategy):
    # Single-worker strategies say True; under MultiWorkerMirroredStrategy only the chief
    # (or worker 0 when there is no chief task) does.
    return bool(strategy.extended.should_checkpoint)


def _task_name(strategy):
    """`" [worker:1]"` under a multi-worker strategy, else `""` (for log lines)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return ""
    return f" [{resolver.task_type}:{resolver.task_id}]"


def weights_digest(inverter):
    """sha256 of G, G_ema and D's weights (this worker's copy): equal on every worker of a
    correct synchronous run."""
    digest = hashlib.sha256()
    for model in (inverter.generator, inverter.ema_generator, inverter.discriminator):
        for v in model.weights:
            digest.update(np.ascontiguousarray(v.numpy()).tobytes())
    return digest.hexdigest()


def evaluate(inverter, config, workdir, images):
    """Held-out agreement, and the labelled reconstruction grid of `images` (the run's fixed
    eval batch, already read once for TensorBoard), written by the chief only. Every worker
    of a multi-worker run must call this: evaluation is collective."""
    strategy = inverter.distribute_strategy
    eval_batch = eval_batch_size(config, strategy.num_replicas_in_sync)
    eval_ds = _eval_dataset(config, eval_batch)
    # Cardinality is unknown after filtering decoders, so count (cheap next to evaluating).
    n_batches = sum(1 for _ in eval_ds)
    if n_batches == 0:
        raise ValueError(f"Eval split {config.eval_split!r} of {config.dataset!r} has fewer "
                         f"than {eval_batch} images.")
    def agreement():
        # An explicit step count: Keras never reads past the end (no "ran out of data").
        return float(inverter.evaluate(eval_ds.map(_images_only), steps=n_batches, verbose=0,
                                       return_dict=True)["agreement"])

    # Both sides of BigGAN's standing statistics, on the same images and noise: G_ema with
    # the EMA of G's moving statistics, then with statistics measured on G_ema itself
    # (which every later output and the export use).
    without = agreement() if config.standing_stats_batches else None
    standing = apply_standing_stats(inverter, config)
    metrics = {"agreement": agreement() if standing or without is None else without,
               "agreement_without_standing_stats": without,
               "standing_stats_batches": standing,
               "eval_examples": n_batches * eval_batch, "eval_split": config.eval_split}
    if not _is_chief(strategy):
        return metrics
    logits = inverter.classifier(images)
    recon = inverter.generate(logits, callbacks_lib.grid_noise(inverter, len(images)))
    recon_logits = inverter.classifier(recon)
    names = inverter.classifier.spec.class_names
    label = (lambda i: names[i]) if names else str
    if hasattr(inverter.classifier, "logits"):  # conditioned on another layer: label by logits
        logits, recon_logits = inverter.classifier.logits(images), inverter.classifier.logits(recon)
        names = inverter.classifier.logits_spec.class_names
        label = (lambda i: names[i]) if names else str
    grid = visualize.labelled_grid(
        images.numpy(), recon.numpy(),
        [label(int(i)) for i in np.argmax(logits, -1)],
        [label(int(i)) for i in np.argmax(recon_logits, -1)])
    visualize.save_png(grid, files.join(workdir, "reconstructions.png"))
    return metrics


def validate_config(config, num_replicas=1):
    """`configs.validation.validate` with the architecture table and the classifier's spec
    passed in: every check a run makes before it writes anything."""
    validation.validate(config, num_replicas, architecture=arch,
                        resolve_classifier=frozen.resolve_spec)


def train(config, workdir, strategy="default", tpu=None, verbose=1):
    """Trains (or resumes) an inverter in `workdir`; returns and writes `metrics.json`.

    `config.mixed_precision` sets Keras's global dtype policy for the run; the caller's
    policy is restored when it returns or raises."""
    policy = keras.mixed_precision.global_policy()
    try:
        return _train(config, workdir, strategy, tpu, verbose)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _train(config, workdir, strategy, tpu, verbose):
    strategy = distribute.get_strategy(strategy, tpu)   # bad name / no TPU: fail first
    validate_config(config, num_replicas=strategy.num_replicas_in_sync)  # before any write
    checkpointing.check_compatible(workdir, config)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(config.seed)
    # Reading the held-out split first makes a bad dataset name, or a split too small for the
    # fixed grid or one evaluation batch, fail before anything is written.
    _check_eval_split(config, strategy.num_replicas_in_sync)
    fixed = next(iter(_eval_dataset(config, config.num_images)))["image"]
    # Φ is loaded once here; the pre-flight check, the inverter and the feature loss share it.
    with strategy.scope():
        classifier = load_frozen_classifier(config)
    # The classifier must classify held-out images under its spec (range, channel order,
    # logits) before anything is trained or written; config.preflight.accept_risk overrides.
    preflight_report = preflight.check_config(config, classifier)
    # Only the chief writes into the workdir (config, TensorBoard, checkpoints, outputs).
    chief = _is_chief(strategy)
    task = _task_name(strategy)

    with strategy.scope():
        inverter = build_inverter(config, classifier)
        compile_inverter(inverter, config)
    # Only now: a classifier that fails when loaded must leave no empty workdir behind.
    if chief:
        tf.io.gfile.makedirs(workdir)
    manager = checkpointing.make_manager(inverter, workdir, config.keep_checkpoints, chief)
    if manager.latest_checkpoint:
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s", manager.latest_checkpoint)
    start_step = int(inverter.g_optimizer.iterations.numpy())
    if chief:
        checkpointing.record_config(workdir, config)
    if chief and preflight_report is not None:
        checkpointing.write_json_atomic(files.join(workdir, "preflight.json"), preflight_report)
    bfloat16 = inverter.train_function_wrapper is not None
    print(f"logit_inversion: training in {workdir} from step {start_step} "
          f"to {config.num_steps} on {strategy.num_replicas_in_sync} replica(s){task}"
          + (f"; convolutions in bfloat16 (cpu_bfloat16={config.cpu_bfloat16!r})"
             if bfloat16 else ""), flush=True)

    guard = callbacks_lib.NanGuard()
    throughput = callbacks_lib.Throughput(config.steps_per_execution)
    cbs = [guard, callbacks_lib.Checkpointer(manager, guard), throughput]
    board = None
    if chief:
        board = callbacks_lib.TensorBoardLogger(files.join(workdir, "tensorboard"), fixed)
        cbs.append(board)
    epochs = config.num_steps // config.checkpoint_every
    initial_epoch = start_step // config.checkpoint_every
    start = time.perf_counter()
    if initial_epoch < epochs:
        inverter.fit(_train_dataset(config, strategy, start_step), epochs=epochs,
                     initial_epoch=initial_epoch, steps_per_epoch=config.checkpoint_every,
                     callbacks=cbs, verbose=verbose)
    if guard.failure is not None:
        key, value, step = guard.failure
        last = manager.latest_checkpoint or "none yet"
        raise FloatingPointError(
            f"{key} became {value} at step {step}; training stopped. The last good "
            f"checkpoint ({last}) is kept; lower the learning rates or resume from it.")

    metrics = evaluate(inverter, config, workdir, fixed)
    if chief:   # per class: the same held-out images, in the same order, as `evaluate`
        eval_batch = eval_batch_size(config, strategy.num_replicas_in_sync)
        metrics.update(class_report.scores(inverter, _eval_dataset(config, eval_batch)))
    global_batch = config.batch_size * config.d_steps
    metrics.update({
        "steps": int(inverter.g_optimizer.iterations.numpy()),
        "steps_per_second": throughput.steps_per_second,
        "images_per_second": throughput.steps_per_second * global_batch,
        "train_seconds_this_run": time.perf_counter() - start,
        "classifier": config.classifier, "dataset": config.dataset,
        "weights_sha256": weights_digest(inverter),
        "cpu_bfloat16": bfloat16,
        "preflight": preflight_report,
    })
    metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
               for k, v in metrics.items()}
    print(f"logit_inversion: finished at step {metrics['steps']}{task}; weights sha256 "
          f"{metrics['weights_sha256']}", flush=True)
    if not chief:
        return metrics
    checkpointing.write_json_atomic(files.join(workdir, "metrics.json"), metrics)
    board.log_held_out(metrics)
    for line in class_report.warning_lines(metrics):
        print(f"logit_inversion: {line}", flush=True)
    without = metrics["agreement_without_standing_stats"]
    print(f"logit_inversion: held-out agreement {metrics['agreement']:.3f} on "
          f"{metrics['eval_examples']} images"
          + (f" ({without:.3f} without standing statistics)" if without is not None else "")
          + f"; {class_report.summary(metrics)}"
          + f"; outputs in {workdir}: metrics.json, "
          "reconstructions.png, tensorboard/, checkpoints/", flush=True)
    return metrics
