"""What `bin/evaluate` can evaluate, behind one interface: a spec string → a `Reconstructor`.

Specs:
- a `bin/train` workdir (has `config.json`): the EMA generator of its newest checkpoint; a
  deterministic decoder (e.g. `configs/dosovitskiy_brox.py`) ignores the noise seed;
- an export folder (`bin/export` output, a model or version folder);
- `optimize[:key=value,...]`: the optimization baseline (`baselines.optimization`).
"""

import dataclasses
import os
from typing import Callable

import tensorflow as tf

from logit_inversion.evaluation.baselines import optimization

BATCH = 100


@dataclasses.dataclass
class Reconstructor:
    """A model under evaluation.

    Attributes:
        spec: the string it was made from.
        kind: "inverter", "export" or "optimization".
        resolution: side R of its reconstructions.
        reconstruct: `(images [n, h, w, 3] in [-1, 1], logits [n, K], seed) → [n, R, R, 3]`
            in [-1, 1]; image i's noise depends only on (seed, i).
        classifier: handle of the classifier it inverts, when known.
        deterministic: whether the noise is ignored (diversity is then 0 by construction).
    """

    spec: str
    kind: str
    resolution: int
    reconstruct: Callable
    classifier: str | None = None
    deterministic: bool = False


def _noise(n, dim, seed):
    return tf.random.stateless_normal((n, dim), seed=(seed, 7))


def _batched(fn, n):
    parts = [fn(slice(i, min(i + BATCH, n))) for i in range(0, n, BATCH)]
    return tf.concat(parts, 0)


def check_checkpoint_covers_generator(inverter, workdir):
    """Raises ValueError unless the newest checkpoint of `workdir` holds a value for every
    weight of the restored EMA generator: a checkpoint that misses some (layers it did not
    track) would silently be evaluated with random weights."""
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    saved = sum(1 for name, _ in tf.train.list_variables(path)
                if name.startswith("ema_generator/") and ".OPTIMIZER_SLOT" not in name)
    expected = len(inverter.ema_generator.weights)
    if saved < expected:
        raise ValueError(f"Checkpoint {path} holds {saved} of the EMA generator's {expected} "
                         f"weights; evaluating it would use random layers. Received: "
                         f"model={workdir}")


def _from_workdir(spec):
    from logit_inversion.training import checkpoints, trainer

    config = checkpoints.load_config(spec)
    inverter = trainer.restore_inverter(spec)
    check_checkpoint_covers_generator(inverter, spec)
    deterministic = bool(getattr(inverter, "deterministic", False))

    def reconstruct(images, logits, seed=0):
        noise = _noise(len(logits), inverter.noise_dim, seed)
        if deterministic:
            noise = tf.zeros_like(noise)
        return _batched(lambda s: inverter.generate(logits[s], noise[s]), len(logits))

    return Reconstructor(spec, "inverter", inverter.resolution, reconstruct, config.classifier,
                         deterministic)


def _from_export(spec):
    from logit_inversion.serving import loading

    loaded = loading.load(spec)

    def reconstruct(images, logits, seed=0):
        # The export computes its own logits from uint8 pixels, as TF Serving would; the
        # noise still comes from the same (seed, i) as for workdirs.
        del images
        noise = _noise(len(logits), loaded.noise_dim, seed)
        out = _batched(lambda s: tf.constant(loaded.generate(logits[s], noise=noise[s])),
                       len(logits))
        return tf.cast(out, tf.float32) / 127.5 - 1.0

    return Reconstructor(spec, "export", loaded.resolution, reconstruct,
                         loading.model_metadata(spec).get("classifier"))


def _from_optimization(spec, classifier, resolution, progress):
    inverter = optimization.OptimizationInverter.from_spec(classifier, spec, resolution)

    def reconstruct(images, logits, seed=0):
        del images
        return inverter.invert(logits, seed=seed, progress=progress)

    recon = Reconstructor(spec, "optimization", inverter.resolution, reconstruct,
                          classifier.handle)
    recon.inverter = inverter
    return recon


def load_model(spec, classifier=None, resolution=None, progress=None):
    """A `Reconstructor` for a workdir, an export or an `optimize:...` spec.

    Args:
        spec: see the module docstring.
        classifier: the `FrozenClassifier` an optimization baseline inverts.
        resolution: side of the optimised images (default: the classifier's input size).
        progress: `callable(step, logit_error)` for the optimization's progress lines.
    """
    spec = str(spec)
    if spec.split(":", 1)[0] == optimization.PREFIX:
        if classifier is None:
            raise ValueError(
                f"The optimization baseline needs a classifier. Received: model={spec}")
        return _from_optimization(spec, classifier, resolution, progress)
    if os.path.isfile(os.path.join(spec, "config.json")):
        return _from_workdir(spec)
    if os.path.isdir(spec):
        return _from_export(spec)
    raise ValueError("Expected a bin/train workdir, a bin/export folder or "
                     f"'optimize[:key=value,...]'. Received: model={spec}")
