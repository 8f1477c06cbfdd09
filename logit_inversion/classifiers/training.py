"""Training, export and evaluation of the small classifiers shipped in `savedmodels/`.

The inverter needs a frozen classifier to invert. For the `shapes` demo and CIFAR-10 we train
our own: a small CNN, standard or adversarially trained (L-infinity FGSM-RS or PGD), exported
as a TF Hub-format SavedModel with a `metadata.json` that `classifiers.load_classifier` reads.

Example:

```python
metadata = train_classifier(output="savedmodels/shapes_cnn", dataset="shapes", epochs=8)
evaluate_classifier("savedmodels/shapes_cnn", dataset="shapes", epsilon=8 / 255)
```
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf
import tensorflow_datasets as tfds
from keras import layers

from logit_inversion.data import shapes  # registers the `shapes` TFDS builder
from logit_inversion.classifiers import adversarial, frozen as classifiers

MODES = ("standard", "fgsm_rs", "pgd")
OPTIMIZERS = ("sgd", "adam")
DEFAULT_EPSILON = 8 / 255


def build_cnn(input_size, num_classes, width=32, name="cnn"):
    """A small VGG-style CNN: three stages of two 3x3 conv + BN + ReLU, global pooling, dense.

    With `width=32`: 0.29M parameters (~1.1 MB in float32).

    Args:
        input_size: height == width of the input images `[batch, size, size, 3]` in [0, 1].
        num_classes: width of the output logits.
        width: channels of the first stage; doubled at each of the next two stages.

    Returns:
        A `keras.Model` from images in [0, 1] to logits `[batch, num_classes]`.
    """
    if width < 1:
        raise ValueError(f"`width` must be positive. Received: width={width}")
    inputs = keras.Input((input_size, input_size, 3))
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)  # centred inputs train faster
    for stage, multiplier in enumerate((1, 2, 4)):
        if stage > 0:
            x = layers.MaxPooling2D()(x)
        for _ in range(2):
            x = layers.Conv2D(width * multiplier, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name=name)


class AdversarialTraining(keras.Model):
    """Trains `network` on adversarial examples made on the fly (or on clean ones, `standard`).

    Args:
        network: a `keras.Model` from images in [0, 1] to logits.
        mode: one of `MODES`.
        epsilon: L-infinity radius in [0, 1] pixel units.
        pgd_steps: attack steps for `mode="pgd"` (step size 2.5 * epsilon / steps, Madry et al.).
        seed: seed of the attacks' random starts.
    """

    def __init__(self, network, mode="standard", epsilon=DEFAULT_EPSILON, pgd_steps=7, seed=0, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode}")
        self.network = network
        self.mode = mode
        self.epsilon = epsilon
        self.pgd_steps = pgd_steps
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        return self.network(images, training=training)

    def perturb(self, images, labels):
        # Attacks run the network in training mode, as the update does (batch-statistics BN):
        # the perturbation then targets the function being trained.
        def logits_fn(x):
            return self.network(x, training=True)

        if self.mode == "fgsm_rs":
            return adversarial.fgsm_rs_attack(logits_fn, images, labels, self.epsilon, self.seed_generator)
        if self.mode == "pgd":
            step_size = 2.5 * self.epsilon / self.pgd_steps
            return adversarial.pgd_attack(
                logits_fn, images, labels, self.epsilon, self.pgd_steps, step_size, self.seed_generator
            )
        return images

    def train_step(self, data):
        images, labels = data
        images = self.perturb(images, labels)
        with tf.GradientTape() as tape:
            logits = self.network(images, training=True)
            loss = self.compute_loss(x=images, y=labels, y_pred=logits)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        # `compute_loss` does not update the loss tracker; a custom train_step must.
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(labels, logits)
        return {metric.name: metric.result() for metric in self.metrics}


def load_dataset(dataset, split, data_dir=None, batch_size=128, training=False, max_examples=None,
                 label_mode=None):
    """Batches of `(images float32 [batch, h, w, 3] in [0, 1], labels int64 [batch])`.

    Training batches are shuffled and augmented (see `augment`). `label_mode` (`shapes` only, a
    key of `shapes.LABEL_MODES`) replaces the shape label by the class of that mode, computed
    from each example's factors.
    """

    def to_unit_range(image, label):
        return tf.cast(image, tf.float32) / 255.0, label

    def augment_batch(images, labels):
        return augment(images, dataset), labels

    def relabelled(example):
        return example["image"], shapes.relabel_tf(example["label"], example, label_mode)

    if label_mode not in (None, "shape"):
        _check_label_mode(dataset, label_mode)
        ds = tfds.load(dataset, split=split, data_dir=data_dir).map(relabelled)
    else:
        ds = tfds.load(dataset, split=split, data_dir=data_dir, as_supervised=True)
    if max_examples is not None:
        ds = ds.take(max_examples)
    ds = ds.map(to_unit_range).cache()
    if training:
        ds = ds.shuffle(10_000, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training:
        ds = ds.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_label_mode(dataset, label_mode):
    if label_mode is None:
        return
    if dataset != "shapes":
        raise ValueError(f"`label_mode` applies to the shapes dataset only. Received: "
                         f"dataset={dataset!r}, label_mode={label_mode!r}")
    shapes.label_names(label_mode)  # raises on an unknown mode


def augment(images, dataset):
    """Training augmentation for a batch `[batch, h, w, 3]` in [0, 1].

    `shapes`: random blur and Gaussian pixel noise, so the classifier reads the shape rather
    than crisp edges or pixel texture, and stays right on the slightly blurry, noisy images a
    generator makes. Other datasets (CIFAR-10): random 4-px translation and horizontal flip.
    """
    if dataset == "shapes":
        # Per-example blur strength: mix each image with two passes of a 3x3 binomial blur.
        blurred = _binomial_blur(_binomial_blur(images))
        strength = tf.random.uniform([tf.shape(images)[0], 1, 1, 1])
        images = images + strength * (blurred - images)
        noise_std = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], 0.0, 0.08)
        images = images + noise_std * tf.random.normal(tf.shape(images))
        return tf.clip_by_value(images, 0.0, 1.0)
    size = images.shape[1]
    padded = tf.pad(images, [[0, 0], [4, 4], [4, 4], [0, 0]], mode="REFLECT")
    # One random 4-px shift per image: a batched crop at per-example offsets.
    batch = tf.shape(images)[0]
    offsets = tf.random.uniform([batch, 2], 0, 9, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(size)[None, :]  # [batch, size]
    cols = offsets[:, 1:] + tf.range(size)[None, :]
    crops = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    return tf.image.random_flip_left_right(crops)


def _binomial_blur(images):
    kernel_1d = tf.constant([0.25, 0.5, 0.25])
    kernel = tf.tile((kernel_1d[:, None] * kernel_1d[None, :])[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def train_classifier(
    output,
    dataset="shapes",
    data_dir=None,
    mode="standard",
    epsilon=DEFAULT_EPSILON,
    pgd_steps=7,
    epochs=10,
    batch_size=128,
    width=32,
    learning_rate=None,
    optimizer="sgd",
    seed=0,
    eval_pgd_steps=20,
    eval_examples=None,
    overwrite=False,
    command=None,
    verbose=2,
    label_mode=None,
):
    """Trains a classifier and writes it to `output` as a TF Hub-format SavedModel.

    Evaluates the exported model on the test split (clean and PGD-`eval_pgd_steps` accuracy at
    `epsilon`, whatever the mode) and writes the results, the recipe and `command` into
    `output/metadata.json`. The directory appears atomically: written to a temporary sibling,
    then renamed.

    Args:
        output: directory to create; an existing one is replaced only with `overwrite=True`.
        dataset: TFDS name with `image` and `label` features and `train`/`test` splits.
        data_dir: TFDS data directory.
        mode: `standard`, `fgsm_rs` or `pgd` (adversarial training at `epsilon`).
        epsilon: L-infinity radius in [0, 1] pixel units, for training and evaluation.
        pgd_steps: attack steps when training with `mode="pgd"`.
        epochs, batch_size, width, seed: the training recipe.
        learning_rate: peak learning rate (cosine decay); default 0.05 * batch_size / 128
            for SGD, 1e-3 for Adam.
        optimizer: `sgd` (momentum 0.9, Nesterov, weight decay 5e-4) or `adam` (decoupled
            weight decay 5e-4, AdamW): the one thing that differs between the shipped
            standard classifier and an optimizer-only variant.
        eval_pgd_steps: PGD steps of the robust-accuracy evaluation.
        eval_examples: PGD-evaluate the first `eval_examples` test images only (PGD is costly;
            clean accuracy always uses the whole test split).
        overwrite: replace an existing `output`.
        command: the command line, recorded in the metadata.
        verbose: `fit` verbosity.
        label_mode: `shapes` only: the classes to learn, a key of `shapes.LABEL_MODES`
            (default: the dataset's labels), e.g. `shape_quadrant`, 24 classes (shape x
            quadrant of its position), whose logits must carry the position.

    Returns:
        The metadata dict.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise ValueError(f"Output exists; pass overwrite=True to replace it. Received: output={output}")
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}. Received: "
                         f"optimizer={optimizer!r}")
    _check_label_mode(dataset, label_mode)
    keras.utils.set_random_seed(seed)
    start = time.time()

    info = tfds.builder(dataset, data_dir=data_dir).info
    input_size = info.features["image"].shape[0]
    class_names = (shapes.label_names(label_mode) if label_mode
                   else tuple(info.features["label"].names))
    train = load_dataset(dataset, "train", data_dir, batch_size, training=True,
                         label_mode=label_mode)
    test = load_dataset(dataset, "test", data_dir, batch_size, label_mode=label_mode)

    network = build_cnn(input_size, len(class_names), width, name=f"{dataset}_cnn")
    model = AdversarialTraining(network, mode, epsilon, pgd_steps, seed)
    steps_per_epoch = int(tf.data.experimental.cardinality(train))
    learning_rate = learning_rate or (0.05 * batch_size / 128 if optimizer == "sgd" else 1e-3)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, epochs * steps_per_epoch - steps_per_epoch // 2),
        warmup_target=learning_rate,
        warmup_steps=steps_per_epoch // 2,
    )
    model.compile(
        optimizer=(keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4)
                   if optimizer == "sgd" else keras.optimizers.AdamW(schedule, weight_decay=5e-4)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    model.fit(train, epochs=epochs, validation_data=test, shuffle=False, verbose=verbose)
    training_seconds = time.time() - start

    spec = classifiers.ClassifierSpec(input_size, (0.0, 1.0), len(class_names), class_names)
    metadata = {
        **spec.to_dict(),
        "dataset": dataset,
        "label_mode": label_mode,
        "mode": mode,
        "epsilon": epsilon,
        "train_pgd_steps": pgd_steps if mode == "pgd" else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "width": width,
        "learning_rate": learning_rate,
        "optimizer": optimizer,
        "seed": seed,
        "parameters": network.count_params(),
        "training_seconds": round(training_seconds, 1),
        "command": command,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        export_hub_savedmodel(network, input_size, staging)
        # Evaluate what ships: the exported SavedModel, through the same loader users call.
        # Clean accuracy on the whole test split; PGD (costly) on the first `eval_examples`.
        # Default batch size and seed, so `bin/evaluate_classifier` reproduces the numbers.
        clean = evaluate_classifier(str(staging), dataset, "test", data_dir, 0.0, 0, spec=spec,
                                    label_mode=label_mode)
        robust = evaluate_classifier(
            str(staging), dataset, "test", data_dir, epsilon, eval_pgd_steps,
            max_examples=eval_examples, spec=spec, label_mode=label_mode,
        )
        metadata.update(
            test_accuracy=clean["clean_accuracy"],
            test_examples=clean["examples"],
            pgd_accuracy=robust["robust_accuracy"],
            pgd_steps=eval_pgd_steps,
            pgd_examples=robust["examples"],
            pgd_subset_clean_accuracy=robust["clean_accuracy"],
        )
        (staging / classifiers.METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
        _replace_dir(staging, output, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metadata


def export_hub_savedmodel(network, input_size, directory):
    """Writes `network` as a TF Hub-format SavedModel: a callable, `serving_default`, `features`.

    All take float32 images `[batch, input_size, input_size, 3]` in [0, 1]; `__call__` returns
    logits `[batch, classes]`, `serving_default` returns `{"logits": ...}`, and `features`
    returns `{"features": ...}`, the pooled penultimate features `[batch, channels]` (the input
    of the final dense layer; what `classifiers.features` loads as `layer="penultimate"`).
    """
    image_spec = tf.TensorSpec([None, input_size, input_size, 3], tf.float32, name="images")
    penultimate = keras.Model(network.inputs, network.layers[-1].input)

    @tf.function(input_signature=[image_spec])
    def logits(images):
        return network(images, training=False)

    @tf.function(input_signature=[image_spec])
    def serve(images):
        return {"logits": logits(images)}

    @tf.function(input_signature=[image_spec])
    def features(images):
        return {"features": penultimate(images, training=False)}

    module = tf.Module()
    module.network = network  # tracks the weights
    module.__call__ = logits  # saved as the object's call: what `hub.load(...)(images)` runs
    tf.saved_model.save(
        module, str(directory), signatures={"serving_default": serve, "features": features})


def _replace_dir(source, target, overwrite):
    source.chmod(0o755)  # mkdtemp made it private
    if not target.exists():
        os.rename(source, target)
        return
    if not overwrite:
        raise ValueError(f"Output exists; pass overwrite=True to replace it. Received: output={target}")
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.rename(target, backup / target.name)
    os.rename(source, target)
    shutil.rmtree(backup)


def evaluate_classifier(
    classifier,
    dataset="shapes",
    split="test",
    data_dir=None,
    epsilon=DEFAULT_EPSILON,
    pgd_steps=20,
    batch_size=256,
    max_examples=None,
    spec=None,
    seed=0,
    label_mode=None,
):
    """Clean and L-infinity PGD accuracy of any classifier `load_classifier` accepts.

    Args:
        classifier: a handle for `classifiers.load_classifier`.
        dataset, split, data_dir: the TFDS data to evaluate on.
        epsilon: PGD radius in [0, 1] pixel units (0: clean accuracy only).
        pgd_steps: PGD steps (step size epsilon / 4).
        batch_size: evaluation batch size.
        max_examples: evaluate on the first `max_examples` examples only.
        spec: optional `ClassifierSpec` (default: registry or metadata.json).
        seed: seed of PGD's random starts.
        label_mode: `shapes` only: score against the classes of this mode (see
            `load_dataset`); default: the mode whose class names the classifier has, if any.

    Returns:
        Dict with `clean_accuracy`, `robust_accuracy`, `examples`, and the settings used.
    """
    clf = classifiers.load_classifier(classifier, spec)
    if label_mode is None and dataset == "shapes":
        label_mode = shapes.label_mode_of(clf.spec.class_names)
    data = load_dataset(dataset, split, data_dir, batch_size, max_examples=max_examples,
                        label_mode=label_mode)

    def logits_fn(images):
        # The frozen classifier takes [-1, 1]; attacks work in [0, 1] pixel units.
        return clf(images * 2.0 - 1.0)

    results = adversarial.accuracy(logits_fn, data, epsilon, pgd_steps, seed=seed)
    return {
        "classifier": str(classifier),
        "dataset": dataset,
        "split": split,
        "epsilon": epsilon,
        "pgd_steps": pgd_steps,
        **({"label_mode": label_mode} if label_mode not in (None, "shape") else {}),
        **results,
    }
