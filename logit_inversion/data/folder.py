"""Image folders as datasets: class sub-folders (labelled) or a flat folder (label -1).

Files in the wild are messy, and a bad file must never stop a run that has been going for
days. So every file is decoded once at start-up, in parallel with TensorFlow's own decoders;
files TensorFlow cannot read get a second chance with PIL, and the rest are skipped with one
warning line each. The verdicts are cached on disk by (size, mtime), so later runs only look
at files that are new or changed.

Images are turned upright by their EXIF orientation tag (phone photos store pixels sideways and
record the rotation there), in both the TensorFlow and the PIL decoder.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import random
import types
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image, ImageOps

from logit_inversion.data import exif

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
CACHE_DIR_ENV = "LOGIT_INVERSION_CACHE_DIR"
_PREFIX = "folder:"
# Verdicts for one file: TensorFlow decodes it, only PIL does, or it is skipped.
TF, PIL, SKIP = "tf", "pil", "skip"
_CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class FolderIndex:
    """The readable images of a folder.

    Attributes:
        root: absolute path of the folder.
        paths: absolute paths of the readable images, in a fixed pseudo-random order (so
            that a split slice such as `train[:10%]` samples every class).
        labels: index into `class_names` per image, or -1 for a flat folder.
        use_pil: per image, whether only PIL can decode it.
        class_names: sorted names of the class sub-folders; empty for a flat folder.
        skipped: `(path, reason)` of each image file that cannot be read.
    """

    root: str
    paths: list[str]
    labels: list[int]
    use_pil: list[bool]
    class_names: list[str]
    skipped: list[tuple[str, str]]


def resolve(source: str) -> str:
    """The absolute folder path that `source` names (a path, `~/...` or `folder:<path>`)."""
    path = source[len(_PREFIX):] if source.startswith(_PREFIX) else source
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        reason = "is a file, not a folder" if os.path.exists(path) else "does not exist"
        raise ValueError(f"Image folder {path} {reason}. Received: source={source}")
    return path


def scan(source: str, *, cache_dir: str | None = None) -> FolderIndex:
    """Finds and validates the images of a folder, logging each skipped file and a count.

    Args:
        source: the folder (see `resolve`).
        cache_dir: where verdicts are cached; defaults to `$LOGIT_INVERSION_CACHE_DIR` or
            `~/.cache/logit_inversion/folders`.

    Returns:
        The folder's `FolderIndex`.
    """
    root = resolve(source)
    class_names, candidates, num_ignored = _list_images(root)
    if not candidates:
        raise ValueError(
            f"Image folder {root} holds no image files ({', '.join(IMAGE_EXTENSIONS)}) "
            f"{'in its class sub-folders' if class_names else 'directly or in sub-folders'}. "
            f"Received: source={source}"
        )

    cache_path = _cache_path(root, cache_dir)
    cached = _read_cache(cache_path, root)
    verdicts, stale = {}, []
    for relpath, (_, size, mtime) in candidates.items():
        entry = cached.get(relpath)
        if entry is not None and entry[0] == size and entry[1] == mtime:
            verdicts[relpath] = (entry[2], entry[3])
        else:
            stale.append(relpath)
    if stale:
        logging.info("folder %s: validating %d image files", root, len(stale))
        verdicts.update(zip(stale, _validate([os.path.join(root, p) for p in stale])))
        _write_cache(cache_path, root, {p: [*candidates[p][1:], *verdicts[p]] for p in candidates})

    relpaths = sorted(candidates)
    # A fixed order, independent of the training seed, so that split slices never change.
    random.Random(0).shuffle(relpaths)
    good = [p for p in relpaths if verdicts[p][0] != SKIP]
    skipped = [(os.path.join(root, p), verdicts[p][1]) for p in sorted(relpaths) if verdicts[p][0] == SKIP]
    for path, reason in skipped:
        logging.warning("folder %s: skipping %s: %s", root, path, reason)
    count = f"folder {root}: {len(good)} images, {len(skipped)} skipped"
    if num_ignored:
        count += f", {num_ignored} other files ignored"
    (logging.warning if skipped else logging.info)(count)
    if not good:
        raise ValueError(f"Image folder {root} has no readable images. Received: source={source}")
    return FolderIndex(
        root=root,
        paths=[os.path.join(root, p) for p in good],
        labels=[candidates[p][0] for p in good],
        use_pil=[verdicts[p][0] == PIL for p in good],
        class_names=class_names,
        skipped=skipped,
    )


def load(
    source: str, split: str = "train", *, extra_features: Sequence[str] = (), cache_dir: str | None = None
) -> tuple[tf.data.Dataset, Callable[[dict], dict]]:
    """Records of a folder's split and the function that decodes one record.

    Args:
        source: the folder (see `resolve`).
        split: `"train"`, optionally sliced as in TFDS (`"train[:90%]"`, `"train[-500:]"`).
        extra_features: must be empty; folders have images and labels only.
        cache_dir: see `scan`.

    Returns:
        `(records, decode)`: records are dicts of `path`, `label` and `use_pil`; `decode`
        maps one to `{"image": uint8 [height, width, 3], "label": int32 []}`.
    """
    if extra_features:
        raise ValueError(
            f"Image folders have no features besides image and label. "
            f"Received: extra_features={list(extra_features)}"
        )
    index = scan(source, cache_dir=cache_dir)
    selected = _select(len(index.paths), split)
    records = tf.data.Dataset.from_tensor_slices({
        "path": np.array(index.paths, dtype=object)[selected],
        "label": np.array(index.labels, dtype=np.int32)[selected],
        "use_pil": np.array(index.use_pil, dtype=bool)[selected],
    })
    # Almost every folder decodes with TensorFlow alone; leaving the PIL branch out of the
    # graph then lets tf.data run the map without the Python-callback machinery.
    return records, (decode if any(index.use_pil) else decode_with_tf)


def decode_with_tf(record: dict) -> dict:
    """`decode` for folders where no file needs PIL."""
    image = tf.ensure_shape(exif.decode_upright(tf.io.read_file(record["path"])), [None, None, 3])
    return {"image": image, "label": record["label"]}


def decode(record: dict) -> dict:
    """`{"path", "label", "use_pil"}` to `{"image": uint8 [height, width, 3], "label"}`."""
    image = tf.cond(
        record["use_pil"],
        lambda: tf.numpy_function(_decode_with_pil, [record["path"]], tf.uint8, stateful=False),
        lambda: exif.decode_upright(tf.io.read_file(record["path"])),
    )
    image = tf.ensure_shape(image, [None, None, 3])
    return {"image": image, "label": record["label"]}


def _decode_with_tf(contents: tf.Tensor) -> tf.Tensor:
    # Decodability only (start-up validation); training reads through `exif.decode_upright`,
    # which decodes the same way and then applies the EXIF orientation.
    # uint8 output also brings 16-bit PNGs down to 8 bits; channels=3 expands grey and drops
    # alpha; expand_animations=False keeps the first frame of a GIF.
    return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)


def _decode_with_pil(path) -> np.ndarray:
    # tf.numpy_function hands over a 0-d array of bytes.
    path = path.item() if isinstance(path, np.ndarray) else path
    path = path.decode() if isinstance(path, bytes) else path
    with Image.open(path) as image:
        return _pil_to_rgb(ImageOps.exif_transpose(image))


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL image to uint8 `[height, width, 3]`."""
    image.load()
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # PIL's own convert clips 16-bit values at 255; keep the top 8 bits instead.
        values = np.asarray(image).astype(np.int64)
        grey = np.clip(values >> 8 if values.max(initial=0) > 255 else values, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _list_images(root: str) -> tuple[list[str], dict[str, tuple[int, int, int]], int]:
    """Class names, `{relpath: (label, size, mtime_ns)}` of image files, and the ignored count.

    A folder with sub-folders is a class folder: the label of an image is the sorted index
    of the sub-folder it is in (at any depth below it). Otherwise labels are -1.
    """
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    class_names = [e.name for e in class_dirs]
    candidates, ignored = {}, 0

    def add(entry, label):
        nonlocal ignored
        if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
            ignored += not entry.name.startswith(".")
            return
        stat = entry.stat()
        candidates[os.path.relpath(entry.path, root)] = (label, stat.st_size, stat.st_mtime_ns)

    if class_dirs:
        # Images beside the class folders have no class; counted as ignored.
        ignored += sum(e.is_file() for e in entries if not e.name.startswith("."))
        for label, class_dir in enumerate(class_dirs):
            for entry in _walk_files(class_dir.path):
                add(entry, label)
    else:
        for entry in entries:
            if entry.is_file():
                add(entry, -1)
    return class_names, candidates, ignored


def _walk_files(path: str):
    for entry in os.scandir(path):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk_files(entry.path)
        elif entry.is_file():
            yield entry


def _validate(paths: list[str]) -> list[tuple[str, str]]:
    """`(verdict, reason)` per path: decoded once by TensorFlow in parallel, else by PIL."""
    decodable = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), np.array(paths, dtype=object)))
    decodable = decodable.map(
        lambda i, path: (i, tf.shape(_decode_with_tf(tf.io.read_file(path)))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    decodable = decodable.ignore_errors().batch(1024)
    ok = {int(i) for indices, _ in decodable.as_numpy_iterator() for i in indices}
    return [(TF, "") if i in ok else _validate_with_pil(path) for i, path in enumerate(paths)]


def _validate_with_pil(path: str) -> tuple[str, str]:
    try:
        with open(path, "rb") as file:
            contents = file.read()
        if not contents:
            return SKIP, "empty file"
        with Image.open(io.BytesIO(contents)) as image:
            rgb = _pil_to_rgb(image)
        if rgb.size == 0:
            return SKIP, "image has no pixels"
        return PIL, ""
    except Image.UnidentifiedImageError:
        return SKIP, "not a readable image (unknown or corrupt format)"
    except Exception as error:  # pylint: disable=broad-except
        # PIL raises many types (OSError for truncation, SyntaxError, ValueError, ...).
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return SKIP, f"cannot decode ({type(error).__name__}: {message})"


def _select(num_images: int, split: str) -> np.ndarray:
    """Indices of `split` (`"train"`, optionally sliced as in TFDS) among `num_images`."""
    splits = {"train": types.SimpleNamespace(num_examples=num_images, shard_lengths=[num_images])}
    try:
        instructions = tfds.core.ReadInstruction.from_spec(split).to_absolute(splits)
    except (ValueError, AssertionError) as error:
        raise ValueError(
            f"An image folder has one split, 'train', which may be sliced like 'train[:90%]' "
            f"({str(error).splitlines()[0]}); to train on a folder, hold out a slice with "
            f"--config.train_split='train[:80%]' --config.eval_split='train[80%:]'. "
            f"Received: split={split}"
        ) from None
    indices = np.arange(num_images)
    selected = np.concatenate([indices[i.from_:i.to] for i in instructions])
    if selected.size == 0:
        raise ValueError(f"Split {split} of the folder is empty ({num_images} images). Received: split={split}")
    return selected


def _cache_path(root: str, cache_dir: str | None) -> str:
    cache_dir = cache_dir or os.environ.get(CACHE_DIR_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "logit_inversion", "folders"
    )
    return os.path.join(cache_dir, hashlib.sha1(root.encode()).hexdigest()[:16] + ".json.gz")


def _read_cache(cache_path: str, root: str) -> dict:
    try:
        with gzip.open(cache_path, "rt") as file:
            cache = json.load(file)
    except (OSError, ValueError):
        return {}
    if cache.get("version") != _CACHE_VERSION or cache.get("root") != root:
        return {}
    return cache["files"]


def _write_cache(cache_path: str, root: str, files: dict) -> None:
    try:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        temporary = f"{cache_path}.{os.getpid()}.tmp"
        with gzip.open(temporary, "wt") as file:
            json.dump({"version": _CACHE_VERSION, "root": root, "files": files}, file)
        os.replace(temporary, cache_path)  # atomic: concurrent runs never read half a file
    except OSError as error:
        logging.warning("folder %s: cannot write the validation cache %s: %s", root, cache_path, error)
