"""Input pipelines: from a TFDS name or an image folder to batches of images in [-1, 1].

The trainer sees one function, `build_dataset`; where the pixels come from is decided here
from the `source` string alone, so a config switches datasets by changing one field.
"""

from __future__ import annotations

import difflib
import os
from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

# Shuffling happens on encoded bytes (decoding comes after), so a large buffer costs
# kilobytes per element rather than a decoded image.
SHUFFLE_BUFFER = 10_000
FOLDER_PREFIX = "folder:"
# TFDS datasets this package defines (data/shapes.py), suggested first for a misspelt name.
OWN_DATASETS = ("shapes",)
_FOLDER_STARTS = ("/", "./", "../", "~", FOLDER_PREFIX)


def is_folder_source(source: str) -> bool:
    """Whether `source` names an image folder rather than a TFDS dataset."""
    return source.startswith(_FOLDER_STARTS) or os.path.isdir(source)


def build_dataset(
    source: str,
    split: str,
    *,
    resolution: int,
    batch_size: int,
    data_dir: str | None = None,
    training: bool = True,
    seed: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    extra_features: Sequence[str] = (),
) -> tf.data.Dataset:
    """Batches of square images in [-1, 1] with their labels.

    Args:
        source: a TFDS name (`"cifar10"`, `"imagenet_resized/64x64"`, `"shapes"`) or an image
            folder (an existing directory, or a string starting with `/`, `./`, `~` or
            `folder:`).
        split: a TFDS split string such as `"train"` or `"train[:90%]"`. Image folders have a
            single split, `"train"`, which may be sliced the same way.
        resolution: side of the output images; images are centre-cropped to a square and
            resized with antialiasing.
        batch_size: global batch size; with `input_context` each pipeline yields its
            per-replica share.
        data_dir: TFDS data directory. Manual downloads (imagenet2012's tar files) are looked
            for in its `downloads/manual`, or in data_dir itself when that does not exist.
        training: shuffle (seeded) and repeat forever; otherwise a single ordered pass.
        seed: shuffle seed.
        input_context: shards the data between input pipelines when given.
        extra_features: further features to pass through batched (for example the shapes
            dataset's nuisance factors `shape_hue`, `position_x`, ...).

    Returns:
        A dataset of dicts: `image` float32 `[batch, resolution, resolution, 3]` in [-1, 1],
        `label` int32 `[batch]` (-1 where the source has no labels), and each extra feature
        with a leading `[batch]` dimension. The batch dimension is static.

    Example:
        >>> ds = build_dataset("cifar10", "test", resolution=32, batch_size=8,
        ...                    data_dir="../shared/data/tfds", training=False)
        >>> batch = next(iter(ds))
        >>> batch["image"].shape
        TensorShape([8, 32, 32, 3])
    """
    if resolution < 1:
        raise ValueError(f"resolution must be a positive integer. Received: resolution={resolution}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size}")
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)

    if is_folder_source(source):
        from logit_inversion.data import folder  # pylint: disable=import-outside-toplevel

        records, decode = folder.load(source, split, extra_features=extra_features)
        records = _shard(records, input_context)
        # Records are file paths, so a full shuffle is cheap even for ImageNet.
        shuffle_buffer = max(1, int(records.cardinality()))
    else:
        records, decode = _load_tfds(
            source, split, data_dir=data_dir, training=training, seed=seed,
            input_context=input_context, extra_features=extra_features,
        )
        shuffle_buffer = SHUFFLE_BUFFER

    if training:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        records = records.repeat()

    def preprocess(record):
        example = decode(record)
        example["image"] = to_model_range(center_crop_and_resize(example["image"], resolution))
        return example

    dataset = records.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    # A file that cannot be read mid-run (say, a flaky network disk) must cost one example,
    # not a run of several days. Files known to be bad were already dropped at start-up.
    dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_no_autotune_model())


def _no_autotune_model() -> tf.data.Options:
    # tf.data's autotuning runs a model thread that sleeps between rounds, up to a minute
    # once the pipeline is steady. On TF 2.21 destroying the iterator sometimes waits that
    # sleep out: 3 of 4 `bin/train` runs sharing 2 cores sat idle 30-50 s after their last
    # step, in ~IteratorResource joining that thread (2026-12-01, gdb), and 0 of 4 with
    # autotuning off. The pipeline is a few decodes per step, so fixed parallelism (the core
    # count) and prefetch's own buffer growth cost nothing: 400 demo steps took 117.7 s
    # without the model against 123.4 s with it, to the same weights.
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def stream_seed(seed: int, start_step: int) -> int:
    """The shuffle seed of a training stream that starts at generator step `start_step`.

    A run that resumes at step k draws a new order from (seed, k) instead of replaying the
    order it started with; two runs resuming at the same step read the same batches.
    Step 0 keeps `seed` itself, so a fresh run's order does not change.
    """
    if start_step == 0:
        return seed
    # Mixed by SeedSequence, so nearby (seed, step) pairs give unrelated streams.
    return int(np.random.SeedSequence([seed, start_step]).generate_state(1)[0])


def center_crop_and_resize(image: tf.Tensor, resolution: int) -> tf.Tensor:
    """Central square crop, then an anti-aliased resize to `resolution`.

    Args:
        image: `[height, width, 3]` or a batch `[batch, height, width, 3]`, any real dtype
            (values are kept, not rescaled).
        resolution: side of the output.

    Returns:
        float32 `[(batch,) resolution, resolution, 3]`; unchanged but for the cast when
        already a square of that size (so no resampling blur is added).
    """
    static = image.shape
    if static[-3] == resolution and static[-2] == resolution:
        return tf.cast(image, tf.float32)
    height, width = tf.shape(image)[-3], tf.shape(image)[-2]
    side = tf.minimum(height, width)
    image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)
    image = tf.cast(image, tf.float32)
    size = [resolution, resolution]
    # Shrinking: "area" averages every source pixel under an output pixel, which is the
    # anti-aliasing we need at about a third of the cost of `antialias=True` (the input
    # pipeline's bottleneck on JPEG folders). Enlarging: bilinear.
    image = tf.case(
        [(tf.equal(side, resolution), lambda: image),
         (tf.greater(side, resolution), lambda: tf.image.resize(image, size, method="area"))],
        default=lambda: tf.image.resize(image, size, method="bilinear"),
    )
    return tf.ensure_shape(image, [*static[:-3], resolution, resolution, 3])


def to_model_range(image: tf.Tensor) -> tf.Tensor:
    """uint8-valued pixels in [0, 255] (any real dtype) to float32 in [-1, 1]."""
    # Antialiased resampling can overshoot a little at hard edges; clip so [-1, 1] holds.
    return tf.clip_by_value(tf.cast(image, tf.float32) / 127.5 - 1.0, -1.0, 1.0)


def _shard(dataset: tf.data.Dataset, input_context) -> tf.data.Dataset:
    if input_context is None or input_context.num_input_pipelines == 1:
        return dataset
    return dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)


def _load_tfds(source, split, *, data_dir, training, seed, input_context, extra_features):
    """Encoded TFDS records and the function that decodes one of them."""
    builder = _tfds_builder(source, data_dir)
    features = builder.info.features
    if "image" not in features:
        raise ValueError(
            f"TFDS dataset '{source}' has no 'image' feature; its features are "
            f"{sorted(features.keys())}. Received: source={source}"
        )
    unknown = [name for name in extra_features if name not in features]
    if unknown:
        raise ValueError(
            f"extra_features must be features of '{source}' ({sorted(features.keys())}). "
            f"Received: extra_features={list(extra_features)}"
        )

    # Several files per pipeline: shard files, so each worker reads only its part. Fewer
    # (CIFAR-10 is one file): every worker reads all and keeps every n-th example.
    try:
        num_files = len(builder.info.splits[split].file_instructions)
    except (KeyError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"Bad split for TFDS dataset '{source}' (splits: {sorted(builder.info.splits)}): "
            f"{reason} Received: split={split}"
        ) from None
    shard_files = input_context is not None and num_files >= input_context.num_input_pipelines
    read_config = tfds.ReadConfig(
        # The same seed on every worker gives all the same file order, which keeps
        # element-wise sharding disjoint.
        shuffle_seed=seed,
        input_context=input_context if shard_files else None,
    )
    records = builder.as_dataset(
        split=split,
        shuffle_files=training,
        read_config=read_config,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    if not shard_files:
        records = _shard(records, input_context)

    has_label = "label" in features
    keep = list(dict.fromkeys(["image", *(["label"] if has_label else []), *extra_features]))
    records = records.map(lambda ex: {k: ex[k] for k in keep}, num_parallel_calls=tf.data.AUTOTUNE)
    image_feature = features["image"]

    def decode(record):
        example = dict(record)
        example["image"] = image_feature.decode_example(record["image"])
        if image_feature.shape[-1] == 1:  # grayscale datasets such as MNIST
            example["image"] = tf.image.grayscale_to_rgb(example["image"])
        example["label"] = tf.cast(record["label"], tf.int32) if has_label else tf.constant(-1, tf.int32)
        return example

    return records, decode


def _tfds_builder(source: str, data_dir: str | None):
    """The prepared TFDS builder for `source`, preparing it where that needs no download."""
    if source == "shapes" or source.startswith("shapes/"):
        try:
            import logit_inversion.data.shapes  # pylint: disable=import-outside-toplevel,unused-import
        except ImportError as error:
            raise ValueError(
                f"The 'shapes' dataset needs logit_inversion/data/shapes.py, which failed to "
                f"import ({error}). Received: source={source}"
            ) from None
    try:
        builder = tfds.builder(source, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        names = tfds.list_builders(with_community_datasets=False)
        # This package's own datasets first: TFDS registers `shapes` only once imported, and
        # a typo of it must not point at TFDS's unrelated `shapes3d`.
        typed = source.split("/")[0]
        own = difflib.get_close_matches(typed, OWN_DATASETS, n=len(OWN_DATASETS), cutoff=0.6)
        close = own + [name for name in difflib.get_close_matches(typed, names, n=5, cutoff=0.6)
                       if name not in own][:5 - len(own)]
        hint = f"did you mean {', '.join(close)}?" if close else f"registered names include {', '.join(names[:8])}, ..."
        raise ValueError(
            f"'{source}' is not a registered TFDS dataset nor an existing folder; {hint} "
            f"Received: source={source}"
        ) from None
    if builder.is_prepared():
        return builder
    download_config = None
    if data_dir is not None:
        # Manually downloaded archives (imagenet2012) sit in TFDS's usual data_dir/downloads/
        # manual, or, for those who point data_dir at them, in data_dir itself.
        manual_dir = os.path.join(os.path.expanduser(data_dir), "downloads", "manual")
        if not os.path.isdir(manual_dir):
            manual_dir = os.path.expanduser(data_dir)
        download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    try:
        # The shapes builder draws its images, so this never downloads; for the others it
        # downloads when online and fails clearly when not.
        builder.download_and_prepare(download_config=download_config)
    except Exception as error:  # pylint: disable=broad-except
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"TFDS dataset '{source}' is not prepared in data_dir={builder.data_dir} and could "
            f"not be prepared ({type(error).__name__}: {reason}); is it prepared? pass "
            f"--config.data_dir. Received: source={source}"
        ) from None
    return builder
