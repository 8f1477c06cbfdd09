"""Serving overhead: the exported SavedModel against the in-memory Keras model.

Both sides compute the same thing, Φ then the EMA generator: the Keras side calls
`inverter.generate(inverter.classifier(x), noise)` in a `tf.function` on float32 images
already at the model's resolution, the SavedModel side calls the `reconstruct` signature of
the loaded export with uint8 images and seeds (so its figure includes what serving adds:
input checks, uint8 conversions, noise from seeds). Calls alternate between the two sides, so
load from other processes on the machine falls on both alike. Latency is measured at batch 1
(p50, p99), throughput at `batch_size` (from the median batch time); overheads are in %
(target ≤ 10 %).

Example:
    >>> from logit_inversion.benchmarks import serving
    >>> results = serving.run("runs/demo", {"latency_requests": 50})
    >>> results["overhead_pct"]
    {'p50': 2.1, 'p99': 3.4, 'throughput': 1.2}
"""

import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from logit_inversion.serving import export, loading

DEFAULTS = {
    "batch_size": 64,
    "latency_requests": 200,  # batch-1 calls per side
    "throughput_batches": 20,  # batch_size calls per side
    "warmup_calls": 5,
}


def run(model_or_path=None, args=None, export_dir=None):
    """Times the export of an inverter against the inverter itself.

    Args:
        model_or_path: a built `LogitInverter`; a training workdir (restored with
            `training.restore_inverter`); a SavedModel (version or model folder), then only the
            SavedModel side is timed; or None: the demo architecture with untrained weights
            and a tiny stand-in classifier (timing does not depend on the weights).
        args: a dict or namespace overriding `DEFAULTS`.
        export_dir: an existing export of `model_or_path` to time, instead of exporting it to
            a temporary folder.

    Returns:
        A dict: `config`, `keras` and `savedmodel` (each `p50_ms`, `p99_ms`,
        `images_per_second`), and `overhead_pct` (`p50`, `p99`, `throughput`; None when
        there is no Keras side).
    """
    options = _options(args)
    with tempfile.TemporaryDirectory(prefix="benchmark_serving_") as workdir:
        inverter, saved_model = _resolve(model_or_path, workdir, export_dir)
        loaded = loading.load(saved_model)
        sides = {"savedmodel": _savedmodel_call(loaded)}
        if inverter is not None:
            sides["keras"] = _keras_call(inverter)
        results = _measure(sides, loaded, options)
    keras_side, served = results.get("keras"), results["savedmodel"]
    overhead = None
    if keras_side is not None:
        overhead = {
            "p50": _pct(served["p50_ms"], keras_side["p50_ms"]),
            "p99": _pct(served["p99_ms"], keras_side["p99_ms"]),
            "throughput": _pct(keras_side["images_per_second"], served["images_per_second"]),
        }
    config = dict(
        options, resolution=loaded.resolution, noise_dim=loaded.noise_dim,
        num_classes=loaded.num_classes, cpu_count=os.cpu_count(),
    )
    return {"config": config, **results, "overhead_pct": overhead}


def _options(args):
    overrides = args if isinstance(args, dict) else vars(args) if args is not None else {}
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(
            f"Unknown serving benchmark options {sorted(unknown)}; known: {sorted(DEFAULTS)}. "
            f"Received: args={args}"
        )
    return {**DEFAULTS, **overrides}


def _resolve(model_or_path, workdir, export_dir):
    """(inverter or None, SavedModel path) for what `run` was given."""
    if model_or_path is None:
        model_or_path = _demo_inverter(workdir)
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if _is_export(path):
            return None, path
        from logit_inversion import training  # only needed for workdirs; heavy to import

        model_or_path = training.restore_inverter(path)
    if export_dir is None:
        export_dir = export.export_inverter(model_or_path, os.path.join(workdir, "export"))
    return model_or_path, export_dir


def _is_export(path):
    try:
        loading.resolve_version(path)
        return True
    except ValueError:
        return False


def _demo_inverter(workdir):
    from logit_inversion import testing, training

    classifier = testing.save_tiny_classifier(os.path.join(workdir, "classifier"))
    config = testing.demo_config()
    config.classifier = classifier
    return training.build_inverter(config)


def _savedmodel_call(loaded):
    signature = loaded.signatures[export.RECONSTRUCT]

    def call(images, seeds, noise):
        del noise  # drawn from the seeds inside the graph
        return signature(images=images, seed=seeds)["reconstructions"]

    return call


def _keras_call(inverter):
    @tf.function
    def reconstruct(images, noise):
        return inverter.generate(inverter.classifier(images), noise)

    def call(images, seeds, noise):
        del seeds
        return reconstruct(tf.cast(images, tf.float32) / 127.5 - 1.0, noise)

    return call


def _measure(sides, loaded, options):
    """Per side: batch-1 latency percentiles and throughput at `batch_size`."""
    batch_size = options["batch_size"]
    inputs = {size: _inputs(loaded, size) for size in (1, batch_size)}
    for call in sides.values():
        for _ in range(options["warmup_calls"]):
            for size in inputs:
                call(*inputs[size]).numpy()
    latencies = {name: [] for name in sides}
    for _ in range(options["latency_requests"]):
        for name, call in sides.items():
            latencies[name].append(_seconds(call, inputs[1]))
    batches = {name: [] for name in sides}
    for _ in range(options["throughput_batches"]):
        for name, call in sides.items():
            batches[name].append(_seconds(call, inputs[batch_size]))
    # Throughput from the median batch time: on a shared machine a few batches are slowed by
    # other processes, and the median ignores them where a total would not.
    return {
        name: {
            "p50_ms": round(1e3 * float(np.percentile(latencies[name], 50)), 3),
            "p99_ms": round(1e3 * float(np.percentile(latencies[name], 99)), 3),
            "images_per_second": round(batch_size / float(np.median(batches[name])), 1),
        }
        for name in sides
    }


def _inputs(loaded, batch_size):
    """uint8 images at the model's resolution, seeds, and the noise those seeds give."""
    rng = np.random.default_rng(batch_size)
    size = loaded.resolution
    images = tf.constant(rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8))
    seeds = tf.range(batch_size, dtype=tf.int64)
    return images, seeds, export.noise_from_seeds(seeds, loaded.noise_dim)


def _seconds(call, inputs):
    start = time.perf_counter()
    call(*inputs).numpy()
    return time.perf_counter() - start


def _pct(value, reference):
    return round(100.0 * (value / reference - 1.0), 1)
