"""What the experiments share: the reconstruction step, image statistics and the result form.

Every experiment's `run(...)` returns a result dict:
- `summary`: name → number, the headline numbers;
- `tables`: name → list of rows (dicts of numbers and short strings), e.g. one row per ε;
- `params`: the settings it ran with;
- `arrays`: numpy arrays the figure is drawn from (not written to JSON).

Pixel statistics are in [0, 1] pixel units (images are [-1, 1] inside the models, so
differences are halved).
"""

import numpy as np

from logit_inversion.models import metrics
from logit_inversion.serving.model import softmax


def result(summary, tables=None, params=None, arrays=None):
    """The result dict every experiment returns (see the module docstring)."""
    return {"summary": summary, "tables": tables or {}, "params": params or {},
            "arrays": arrays or {}}


def reconstruct(model, images, noise):
    """Logits `[B, K]`, reconstructions `[B, R, R, 3]` and their logits, for `images` and
    noise `[B, Z]`."""
    logits = model.classify(images)
    reconstructions = model.generate(logits, noise)
    return logits, reconstructions, model.classify(reconstructions)


def top1(logits):
    return np.asarray(logits).argmax(-1)


def agreement(logits_a, logits_b):
    """Fraction of rows whose top-1 classes are equal: the package's one top-1 agreement
    (`models.metrics.top1_agreement`), as a Python float."""
    return float(metrics.top1_agreement(np.asarray(logits_a), np.asarray(logits_b)))


def pixel_distance(a, b):
    """Mean absolute pixel difference per image `[B]`, in [0, 1] units."""
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean(axis=(1, 2, 3)) / 2


def brightness(images):
    """Mean pixel value per image `[B]`, in [0, 1]."""
    return (np.asarray(images, np.float64).mean(axis=(1, 2, 3)) + 1) / 2


def contrast(images):
    """Standard deviation of each image's pixels `[B]`, in [0, 1] units."""
    return np.asarray(images, np.float64).std(axis=(1, 2, 3)) / 2


def captions(model, logits):
    """`"circle 0.98"` for each row of logits."""
    probabilities = softmax(logits)
    return [f"{model.class_names[i]}  {probabilities[r, i]:.2f}"
            for r, i in enumerate(top1(logits))]


def logit_scale(logits):
    """The mean, over images, of the standard deviation of each image's logits: a unit for
    sweeps that adapts to the classifier."""
    return float(np.mean(np.std(np.asarray(logits, np.float64), axis=-1)))
