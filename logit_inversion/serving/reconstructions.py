"""Reconstructions of a whole split, written out as a dataset (`bin/reconstruct`).

`write_reconstructions(model, dataset, split, output)` runs every image of a split through a
trained inverter, `num_samples` times with different noise, and writes the reconstructions as

- `format="folder"`: `output/<label>_<class>/<index>_<sample>.png`, one class sub-folder per
  label (the zero-padded label first, so the sorted folder order is the label order and
  `build_dataset(output, "train")` reads the same labels back); each PNG carries its record as
  a `logit_inversion` text chunk (JSON);
- `format="tfds"`: a TFDS dataset `<name>` in the data directory `output`, one split named
  after the source split, read back with `build_dataset(name, split, data_dir=output)`.

Each example carries its source `index` (position in the split), `label`, `sample`, `seed` (its
noise is `models.noise.noise_from_seeds(seed)`, as the export's `reconstruct` draws it),
`logits` (the conditioning vector of the source image), `source_top1` and
`reconstruction_top1` (the classifier's top-1 on the reconstruction). `output/reconstructions
.json` sums the run up (counts, the settings, top-1 agreement).

Resumable: the split is processed in chunks of `batch_size` source images; a chunk whose files
exist is skipped, and every file is written atomically, so an interrupted run re-run with the
same arguments continues where it stopped. A re-run with different settings is refused.

`model` is a `bin/train` workdir or an export, opened with `serving.model.open_model`.
"""

import io
import json
import os
import re
import sys
import time

import numpy as np
import tensorflow as tf

from logit_inversion import files
from logit_inversion.models import noise as noise_lib
from logit_inversion.serving import model as model_handle

FORMATS = ("folder", "tfds")
SUMMARY_FILENAME = "reconstructions.json"
PNG_KEY = "logit_inversion"  # the PNG text chunk holding an image's record
_STAGING = ".reconstruct-staging"


def write_reconstructions(model, dataset, split, output, format="folder", num_samples=1,
                          data_dir=None, batch_size=64, seed=0, name=None, progress=True):
    """Writes the reconstructions of every image of `split`; see the module docstring.

    Args:
        model: a `bin/train` workdir or an exported inverter (model or version folder), or
            what `load_model` or `serving.model.open_model` returned for one (to reuse it).
        dataset, split, data_dir: the source images, as `build_dataset` takes them.
        output: the output folder (format `folder`) or TFDS data directory (format `tfds`).
        format: `"folder"` or `"tfds"`.
        num_samples: reconstructions per source image (different noise each).
        batch_size: source images per chunk (the unit of resumption).
        seed: example i, sample j gets noise seed `seed + i * num_samples + j`.
        name: TFDS dataset name (format `tfds`); default `<dataset>_reconstructions`.
        progress: print a progress line per chunk to stderr.

    Returns:
        The summary dict written to `output/reconstructions.json`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}. Received: format={format}")
    for key, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer. Received: {key}={value}")
    name = name or _tfds_name(dataset)
    if format == "tfds" and not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(
            f"name must be a snake_case TFDS name (lower-case letters, digits, _). "
            f"Received: name={name}")
    inverter = (model if hasattr(model, "reconstruct") else
                _Reconstructor(model) if hasattr(model, "class_logits") else load_model(model))
    records, class_names, total = _source(dataset, split, data_dir, inverter.resolution)
    settings = {"model": inverter.path,
                "dataset": dataset, "split": split, "format": format,
                "num_samples": num_samples, "seed": seed, "batch_size": batch_size}
    if format == "tfds":
        settings["name"] = name
    summary_path = files.join(output, SUMMARY_FILENAME)
    if tf.io.gfile.exists(summary_path):
        done = json.loads(files.read_text(summary_path))
        _check_same(done.get("settings", {}), settings, output)
        return done  # complete: nothing to do
    staging = files.join(output, _STAGING)
    tf.io.gfile.makedirs(staging)
    settings_path = files.join(staging, "settings.json")
    if tf.io.gfile.exists(settings_path):
        _check_same(json.loads(files.read_text(settings_path)), settings, output)
    else:
        files.write_atomic(settings_path, json.dumps(settings, indent=2))

    folders = [f"{label:03d}_{_safe(class_name)}" for label, class_name in enumerate(class_names)]
    writer = _FolderWriter(output, folders) if format == "folder" else _ChunkWriter(staging)
    meter = _Progress(total, num_samples, progress)
    counts = {"generated": 0, "skipped": 0, "agree": 0, "examples": 0}
    for chunk, (indices, images, labels) in enumerate(_chunks(records, batch_size)):
        seeds = (seed + indices[:, None] * num_samples + np.arange(num_samples)).reshape(-1)
        keys = [(int(i), j) for i in indices for j in range(num_samples)]
        repeated_labels = np.repeat(labels, num_samples)
        done = writer.load(chunk, keys, repeated_labels)
        if done is None:
            outputs = inverter.reconstruct(np.repeat(images, num_samples, axis=0), seeds)
            done = {"index": np.repeat(indices, num_samples),
                    "sample": np.tile(np.arange(num_samples), len(indices)),
                    "seed": seeds, "label": repeated_labels, **outputs}
            writer.write(chunk, done)
            counts["generated"] += len(seeds)
        else:
            counts["skipped"] += len(seeds)
        counts["examples"] += len(seeds)
        counts["agree"] += int(np.sum(done["source_top1"] == done["reconstruction_top1"]))
        meter.update(len(indices))

    if format == "tfds":
        _store_tfds(staging, name, _split_name(split), class_names, inverter, output)
    summary = {
        "settings": settings, "examples": counts["examples"],
        "source_images": counts["examples"] // num_samples,
        "generated_this_run": counts["generated"], "skipped_this_run": counts["skipped"],
        "top1_agreement": counts["agree"] / max(counts["examples"], 1),
        "resolution": int(inverter.resolution), "vector_width": int(inverter.vector_width),
        "class_names": list(class_names),
        "read_back": (f"build_dataset({output!r}, 'train', ...)" if format == "folder" else
                      f"build_dataset({name!r}, {_split_name(split)!r}, data_dir={output!r})"),
    }
    files.write_atomic(summary_path, json.dumps(summary, indent=2))
    tf.io.gfile.rmtree(staging)
    meter.finish(summary)
    return summary


def load_model(path):
    """A `bin/train` workdir or an export, as an object with `reconstruct(images, seeds)`.

    Both are opened with `serving.model.open_model` (the package's one model handle, so a
    workdir whose checkpoint misses generator variables is refused). `reconstruct` takes uint8
    images `[B, R, R, 3]` and int64 seeds `[B]`, and returns numpy `image` uint8
    `[B, R, R, 3]`, `logits` float32 `[B, K]` (the conditioning vectors), `source_top1` and
    `reconstruction_top1` int `[B]`.
    """
    path = os.fspath(path)
    if files.is_local(path):
        path = os.path.abspath(path)
    try:
        return _Reconstructor(model_handle.open_model(path))
    except model_handle.NotAModel:
        raise ValueError(
            "--model must be a bin/train workdir (with config.json) or an exported inverter "
            f"(a SavedModel or a folder of numbered versions). Received: model={path}") from None


class _Reconstructor:
    """Reconstructions and top-1 through one `serving.model.InverterModel`."""

    def __init__(self, model):
        self.model = model
        self.inverter = model.inverter
        self.path = model.path
        self.resolution = model.resolution
        self.vector_width = model.num_classes

    def reconstruct(self, images, seeds):
        images = np.asarray(images, np.float32) / 127.5 - 1.0
        vectors = self.model.classify(images)
        noise = np.asarray(noise_lib.noise_from_seeds(tf.constant(seeds, tf.int64),
                                                      self.model.noise_dim))
        reconstructions = self.model.generate(vectors, noise)   # on the uint8 grid
        recon_vectors = self.model.classify(reconstructions)
        return {
            "image": np.round((reconstructions + 1.0) * 127.5).astype(np.uint8),
            "logits": np.asarray(vectors, np.float32),
            "source_top1": np.argmax(self.model.class_logits(images, vectors), -1),
            "reconstruction_top1": np.argmax(
                self.model.class_logits(reconstructions, recon_vectors), -1),
        }


def _source(dataset, split, data_dir, resolution):
    """`(records of (image uint8 [r, r, 3], label), class names, number of images or None)`."""
    from logit_inversion.data import folder, pipeline  # pylint: disable=import-outside-toplevel

    ds = pipeline.build_dataset(dataset, split, resolution=resolution, batch_size=1,
                                data_dir=data_dir, training=False).unbatch()
    ds = ds.map(lambda ex: (tf.cast(tf.round((ex["image"] + 1.0) * 127.5), tf.uint8),
                            ex["label"]))
    total, names = None, None
    if pipeline.is_folder_source(dataset):
        names = folder.scan(dataset).class_names or None
    else:
        info = pipeline._tfds_builder(dataset, data_dir).info
        label = info.features["label"] if "label" in info.features.keys() else None
        names = list(label.names) if label is not None else None
        try:
            total = int(info.splits[split].num_examples)
        except (KeyError, ValueError, TypeError):
            total = None
    return ds, tuple(names or ("unlabelled",)), total


def _chunks(records, batch_size):
    """`(indices int64 [n], images uint8 [n, r, r, 3], labels [n])` per chunk, in order."""
    start = 0
    for images, labels in records.batch(batch_size).as_numpy_iterator():
        n = len(labels)
        yield np.arange(start, start + n, dtype=np.int64), images, labels.astype(np.int64)
        start += n


class _FolderWriter:
    """PNG files in class sub-folders; a chunk is done when all its files exist."""

    def __init__(self, output, folders):
        self.output = output
        self.folders = folders
        for folder in folders:
            tf.io.gfile.makedirs(files.join(output, folder))

    def _path(self, index, sample, label):
        folder = self.folders[max(int(label), 0)]   # label -1 (no labels): the one folder
        return files.join(self.output, folder, f"{index:06d}_{sample}.png")

    def load(self, chunk, keys, labels):
        del chunk
        paths = [self._path(i, j, label) for (i, j), label in zip(keys, labels)]
        if not all(tf.io.gfile.exists(p) for p in paths):
            return None
        records = [read_png_record(p) for p in paths]
        return {key: np.array([r[key] for r in records])
                for key in ("source_top1", "reconstruction_top1")}

    def write(self, chunk, done):
        del chunk
        for k in range(len(done["index"])):
            path = self._path(done["index"][k], done["sample"][k], done["label"][k])
            if tf.io.gfile.exists(path):
                continue
            record = {key: _jsonable(done[key][k]) for key in done if key != "image"}
            files.write_atomic(path, encode_png(done["image"][k], record))


class _ChunkWriter:
    """`.npz` chunks in the staging folder; the TFDS dataset is written from them at the end."""

    def __init__(self, staging):
        self.staging = staging

    def _path(self, chunk):
        return files.join(self.staging, f"chunk-{chunk:06d}.npz")

    def load(self, chunk, keys, labels):
        del keys, labels
        path = self._path(chunk)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path, "rb") as f:
            return dict(np.load(io.BytesIO(f.read())))

    def write(self, chunk, done):
        buffer = io.BytesIO()
        np.savez(buffer, **done)
        files.write_atomic(self._path(chunk), buffer.getvalue())

    def chunks(self):
        names = sorted(n for n in files.list_names(self.staging) if n.startswith("chunk-"))
        for n in names:
            with tf.io.gfile.GFile(files.join(self.staging, n), "rb") as f:
                yield dict(np.load(io.BytesIO(f.read())))


class _Examples:
    """Re-iterable `(key, example)` pairs from the staged chunks, for `store_as_tfds_dataset`."""

    def __init__(self, writer):
        self.writer = writer

    def __iter__(self):
        for done in self.writer.chunks():
            for k in range(len(done["index"])):
                example = {key: done[key][k] for key in done}
                example["label"] = max(int(example["label"]), 0)
                yield f"{int(done['index'][k]):09d}_{int(done['sample'][k]):04d}", example


def _store_tfds(staging, name, split, class_names, inverter, output):
    """Writes the TFDS dataset aside, then moves it into `output/<name>` in one rename."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    r, width = int(inverter.resolution), int(inverter.vector_width)
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(r, r, 3)),
        "label": tfds.features.ClassLabel(names=list(class_names)),
        "index": tfds.features.Scalar(np.int64),
        "sample": tfds.features.Scalar(np.int64),
        "seed": tfds.features.Scalar(np.int64),
        "logits": tfds.features.Tensor(shape=(width,), dtype=np.float32),
        "source_top1": tfds.features.Scalar(np.int64),
        "reconstruction_top1": tfds.features.Scalar(np.int64),
    })
    data_dir = files.join(staging, "tfds")
    if tf.io.gfile.exists(data_dir):
        tf.io.gfile.rmtree(data_dir)   # a half-written dataset from an interrupted run
    tfds.dataset_builders.store_as_tfds_dataset(
        name, "1.0.0", features, {split: _Examples(_ChunkWriter(staging))}, data_dir=data_dir,
        description="Reconstructions written by bin/reconstruct.", disable_shuffling=True)
    target = files.join(output, name)
    if tf.io.gfile.exists(target):
        # Only a previous run of these same settings can have put it there (settings checked).
        tf.io.gfile.rmtree(target)
    tf.io.gfile.rename(files.join(data_dir, name), target)


def encode_png(image, record):
    """PNG bytes of uint8 `[h, w, 3]` with `record` as a JSON text chunk."""
    from PIL import Image, PngImagePlugin  # pylint: disable=import-outside-toplevel

    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_KEY, json.dumps(record))
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_png_record(path):
    """The record `encode_png` stored in a reconstruction PNG."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    with tf.io.gfile.GFile(path, "rb") as f:
        return json.loads(Image.open(io.BytesIO(f.read())).text[PNG_KEY])


def _jsonable(value):
    value = np.asarray(value)
    return value.tolist()


def _check_same(previous, settings, output):
    differing = sorted(k for k in settings if previous.get(k) != settings[k])
    if differing:
        key = differing[0]
        raise ValueError(
            f"{output} holds reconstructions made with {key}={previous.get(key)!r}; use another "
            f"--output or the same settings to resume. Received: {key}={settings[key]!r}")


def _tfds_name(dataset):
    base = os.path.basename(os.path.normpath(dataset)) if "/" in dataset else dataset
    return re.sub(r"[^a-z0-9_]", "_", f"{base}_reconstructions".lower()).lstrip("_0123456789")


def _split_name(split):
    return re.sub(r"[^a-zA-Z0-9_]", "_", split.split("[")[0]) or "train"


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))


class _Progress:
    def __init__(self, total, num_samples, enabled):
        self.total, self.num_samples, self.enabled = total, num_samples, enabled
        self.done, self.start = 0, time.perf_counter()

    def update(self, n):
        self.done += n
        if not self.enabled:
            return
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            eta = (self.total - self.done) / max(rate, 1e-9)
            line = (f"{self.done}/{self.total} images ({100 * self.done / self.total:.0f}%), "
                    f"{rate:.1f} images/s, {eta:.0f} s left")
        else:
            line = f"{self.done} images, {rate:.1f} images/s"
        print(f"reconstruct: {line}", file=sys.stderr, flush=True)

    def finish(self, summary):
        if self.enabled:
            print(f"reconstruct: done, {summary['examples']} reconstructions "
                  f"({summary['generated_this_run']} new) of {summary['source_images']} images; "
                  f"top-1 agreement {summary['top1_agreement']:.3f}", file=sys.stderr, flush=True)
