"""Input-pipeline throughput: images per second that `build_dataset` delivers.

Three sources: CIFAR-10 from a prepared TFDS data dir (32 px), a generated folder of JPEGs
(64 px, so every image is decoded and resized), and the generated `shapes` dataset (32 px).
Each is timed in training mode (shuffle, repeat) after a warm-up, which also lets tf.data's
autotuner settle.

Example:
    >>> from logit_inversion.benchmarks import data
    >>> results = data.run({"num_batches": 20, "folder_images": 500})
    >>> sorted(results)
    ['cifar10_32px', 'config', 'folder_jpeg_64px', 'shapes_32px']
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

import numpy as np
from PIL import Image

from logit_inversion.data import folder, pipeline

DEFAULTS = {
    "batch_size": 64,
    "num_batches": 100,
    "warmup_batches": 5,
    "tfds_data_dir": "/work/shared/data/tfds",  # where CIFAR-10 is prepared
    "shapes_data_dir": None,  # None: generate shapes into a temporary dir
    "folder_images": 2000,
    "folder_image_size": 96,
}


def run(args=None) -> dict:
    """Measures the three sources; `args` is a dict or namespace overriding `DEFAULTS`."""
    options = _options(args)
    results = {"config": dict(options, cpu_count=os.cpu_count())}
    with tempfile.TemporaryDirectory(prefix="benchmark_data_") as workdir:
        results["cifar10_32px"] = _cifar10(options)
        results["folder_jpeg_64px"] = _jpeg_folder(options, workdir)
        results["shapes_32px"] = _shapes(options, workdir)
    return results


def throughput(dataset, *, num_batches: int, warmup_batches: int) -> dict:
    """Images per second over `num_batches` batches, after `warmup_batches`."""
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
    seconds = time.perf_counter() - start
    batch_size = int(batch["image"].shape[0])
    return {
        "images_per_second": round(num_batches * batch_size / seconds, 1),
        "seconds": round(seconds, 3),
        "num_batches": num_batches,
        "batch_size": batch_size,
    }


def _options(args) -> dict:
    overrides = args if isinstance(args, dict) else vars(args) if args is not None else {}
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown data benchmark options {sorted(unknown)}; known: {sorted(DEFAULTS)}. Received: args={args}")
    return {**DEFAULTS, **overrides}


def _measure(options, source, resolution, data_dir=None) -> dict:
    start = time.perf_counter()
    dataset = pipeline.build_dataset(source, "train", resolution=resolution,
                                     batch_size=options["batch_size"], data_dir=data_dir)
    startup = time.perf_counter() - start
    result = throughput(dataset, num_batches=options["num_batches"], warmup_batches=options["warmup_batches"])
    return {**result, "startup_seconds": round(startup, 3)}


def _cifar10(options) -> dict:
    data_dir = options["tfds_data_dir"]
    if not data_dir or not os.path.isdir(os.path.join(data_dir, "cifar10")):
        return {"skipped": f"CIFAR-10 is not prepared in tfds_data_dir={data_dir}"}
    return _measure(options, "cifar10", 32, data_dir)


def _jpeg_folder(options, workdir) -> dict:
    directory = os.path.join(workdir, "jpegs")
    start = time.perf_counter()
    write_random_jpegs(directory, options["folder_images"], options["folder_image_size"])
    write_seconds = time.perf_counter() - start
    # Validation verdicts go to the temporary dir, not the user's cache.
    with _environ(folder.CACHE_DIR_ENV, os.path.join(workdir, "cache")):
        result = _measure(options, directory, 64)
    return {**result, "images": options["folder_images"], "write_seconds": round(write_seconds, 3)}


def write_random_jpegs(directory: str, count: int, size: int, seed: int = 0) -> None:
    """`count` JPEGs of `size`x`size` with random smooth-plus-noise content, in 10 classes."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        class_dir = os.path.join(directory, f"class_{i % 10}")
        os.makedirs(class_dir, exist_ok=True)
        # Blocks plus noise: closer to a photo's JPEG size than pure noise or a flat colour.
        blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = np.kron(blocks, np.ones((size // 8 + 1, size // 8 + 1, 1), np.uint8))[:size, :size]
        image = np.clip(image.astype(np.int16) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(class_dir, f"{i:05d}.jpg"), quality=90)


def _shapes(options, workdir) -> dict:
    try:
        from logit_inversion.data import shapes  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError as error:
        return {"skipped": f"logit_inversion.data.shapes is not importable ({error})"}
    data_dir = options["shapes_data_dir"] or os.path.join(workdir, "tfds")
    # startup_seconds includes generating the dataset when data_dir does not hold it yet.
    return _measure(options, "shapes", 32, data_dir)


@contextlib.contextmanager
def _environ(name, value):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name)
        else:
            os.environ[name] = previous
