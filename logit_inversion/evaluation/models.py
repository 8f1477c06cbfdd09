"""What `bin/evaluate` can evaluate, behind one interface: a spec string → a `Reconstructor`.

Specs:
- a `bin/train` workdir (has `config.json`): the EMA generator of its newest checkpoint; a
  deterministic decoder (e.g. `configs/dosovitskiy_brox.py`) ignores the noise seed;
- an export folder (`bin/export` output, a model or version folder);
- `optimize[:key=value,...]`: the optimization baseline (`baselines.optimization`).

Workdirs and exports are opened with `serving.model.open_model`, the package's one model
handle (and its one checkpoint-coverage policy); their ε comes from `models.noise`.
"""

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from logit_inversion import files
from logit_inversion.evaluation.baselines import optimization
from logit_inversion.serving import model as model_handle


@dataclasses.dataclass
class Reconstructor:
    """A model under evaluation.

    Attributes:
        spec: the string it was made from.
        kind: "inverter", "export" or "optimization".
        resolution: side R of its reconstructions.
        reconstruct: `(images [n, h, w, 3] in [-1, 1], logits [n, K], seed) → [n, R, R, 3]`
            in [-1, 1]; image i's noise is `models.noise.noise_from_seeds([seed + i])`.
        classifier: handle of the classifier it inverts, when known.
        deterministic: whether the noise is ignored (diversity is then 0 by construction).
    """

    spec: str
    kind: str
    resolution: int
    reconstruct: Callable
    classifier: str | None = None
    deterministic: bool = False


def check_checkpoint_covers_generator(inverter, workdir):
    """Raises ValueError, in one line naming them, when the newest checkpoint of `workdir`
    misses variables of the EMA generator: the package's one coverage policy
    (`training.checkpoints.check_covers_generator`, which `restore_inverter` applies too)."""
    from logit_inversion.training import checkpoints  # pylint: disable=import-outside-toplevel

    path = tf.train.latest_checkpoint(files.join(str(workdir), "checkpoints"))
    if path is None:
        raise ValueError(f"No checkpoint in workdir {workdir!r}; train first. "
                         f"Received: workdir={workdir!r}")
    checkpoints.check_covers_generator(path, inverter, workdir)


def _from_handle(spec):
    """A workdir or an export, through the one model handle."""
    model = model_handle.open_model(spec)

    def reconstruct(images, logits, seed=0):
        # An export computes its own logits from pixels only in `reconstruct`; here both kinds
        # generate from the given logits, with ε of image i drawn from seed + i.
        del images
        logits = np.asarray(logits, np.float32)
        noise = model.noise(len(logits), seed)
        if model.deterministic:
            noise = np.zeros_like(noise)
        return tf.constant(model.generate(logits, noise))

    kind = "inverter" if model.kind == "workdir" else "export"
    return Reconstructor(spec, kind, model.resolution, reconstruct, model.classifier,
                         model.deterministic)


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
    if tf.io.gfile.isdir(spec):
        return _from_handle(spec)
    raise ValueError("Expected a bin/train workdir, a bin/export folder or "
                     f"'optimize[:key=value,...]'. Received: model={spec}")
