"""Per-class held-out scores of a trained inverter, and the lines `bin/train` prints about them.

One overall agreement can hide a class that fails completely (a demo run at 0.805 overall
reconstructed every square as empty background), and a generator can ignore its noise for
some classes only. So at the end of training, per class of Φ(x) (the class the reconstruction
must show, not the dataset label, which Φ may disagree with):

- `agreement`: top-1 agreement between Φ(G_ema(Φ(x), ε)) and Φ(x) on the held-out images, with
  the noise `LogitInverter.evaluate` draws, so that on one replica the classes' counts add up
  to the overall `agreement` exactly;
- `epsilon_diversity`: `models.noise_use`'s ε-diversity, from `samples` ε for up to
  `images_per_class` held-out images of the class (their pairwise distances are the
  real-image reference).

`bin/train`'s final line names the worst class; a class under `WARN_BELOW` and classes whose
generator ignores its noise each get a warning line.
"""

import numpy as np
import tensorflow as tf

from logit_inversion.models import noise_use
from logit_inversion.models import inverter as inverter_lib
from logit_inversion.models import metrics as metrics_lib

WARN_BELOW = 0.5
# Beyond this many classes under WARN_BELOW (ImageNet has 1,000 classes), one line counts the
# rest: metrics.json lists them all.
MAX_WARNINGS = 20
# Images kept for the noise-use check, across all classes: bounds memory at ImageNet scale.
MAX_NOISE_IMAGES = 1024
_GENERATE_BATCH = 256
_NOISE_SEED = (7, 11)


def class_names(inverter, num_classes):
    """The classifier's class names (of its logits, for an inverter of another layer), made
    unique; `"0"`, `"1"`, … when it has none."""
    classifier = inverter.classifier
    spec = classifier.logits_spec if hasattr(classifier, "logits") else classifier.spec
    names = list(getattr(spec, "class_names", None) or [])
    if len(names) != num_classes:
        names = [str(i) for i in range(num_classes)]
    if len(set(names)) < len(names):
        names = [f"{i}:{name}" for i, name in enumerate(names)]
    return names


def scores(inverter, eval_ds, samples=8, images_per_class=32):
    """Per-class agreement and ε-diversity of `inverter` on `eval_ds`.

    Args:
        inverter: a trained `LogitInverter` (standing statistics applied, as evaluated).
        eval_ds: the held-out batches `LogitInverter.evaluate` scored (dicts with "image").
        samples: K ≥ 2, noise draws per image for the ε-diversity.
        images_per_class: most images per class for the ε-diversity (fewer when
            `MAX_NOISE_IMAGES` / classes is smaller, at least 2).

    Returns:
        A dict for metrics.json: `per_class` (class name → `images`, `agreement`,
        `epsilon_diversity`), `worst_class`, `worst_class_agreement`, `epsilon_diversity`
        (the mean over classes), `epsilon_diversity_threshold`, `classes_ignoring_noise`,
        `noise_use_samples`, `noise_use_images_per_class`.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer ≥ 2. Received: samples={samples!r}")
    if isinstance(images_per_class, bool) or not isinstance(images_per_class, int) \
            or images_per_class < 2:
        raise ValueError(f"images_per_class must be an integer ≥ 2. "
                         f"Received: images_per_class={images_per_class!r}")
    other_layer = hasattr(inverter.classifier, "logits")
    hits = counts = None
    kept_images, kept_vectors, kept_classes = [], [], []
    scored = 0
    for batch in eval_ds:
        images = batch["image"] if isinstance(batch, dict) else batch
        n = int(images.shape[0])
        vectors = inverter.classifier(images)
        # The noise of `LogitInverter.test_step` for these images (one replica: its counter is
        # the number of images scored before them).
        noise = inverter._noise(n, inverter_lib._EVAL_STREAM,  # pylint: disable=protected-access
                                scored)
        reconstructions = inverter.generate(vectors, noise)
        if other_layer:
            class_logits, recon_logits = inverter.classifier_logits(images, reconstructions)
        else:
            class_logits, recon_logits = vectors, inverter.classifier(reconstructions)
        matches = np.asarray(metrics_lib.top1_matches(class_logits, recon_logits))
        classes = np.asarray(tf.argmax(class_logits, -1))
        if hits is None:
            num_classes = int(class_logits.shape[-1])
            hits, counts = np.zeros(num_classes), np.zeros(num_classes, np.int64)
            keep = int(min(images_per_class, max(2, MAX_NOISE_IMAGES // num_classes)))
        np.add.at(hits, classes, matches)
        np.add.at(counts, classes, 1)
        held = np.bincount(np.asarray(kept_classes, np.int64), minlength=num_classes)
        for i, c in enumerate(classes):
            if held[c] < keep:
                held[c] += 1
                kept_images.append(np.asarray(images[i]))
                kept_vectors.append(np.asarray(vectors[i]))
                kept_classes.append(int(c))
        scored += n
    if hits is None:
        raise ValueError("The held-out dataset is empty: no image to score per class. "
                         "Received: eval_ds with 0 batches")
    names = class_names(inverter, num_classes)
    diversity = _noise_use(inverter, kept_images, kept_vectors, kept_classes, samples,
                           num_classes)
    per_class = {}
    for c, name in enumerate(names):
        per_class[name] = {
            "images": int(counts[c]),
            "agreement": float(hits[c] / counts[c]) if counts[c] else None,
            "epsilon_diversity": diversity[c]["epsilon_diversity"] if diversity else None}
    present = [c for c in range(num_classes) if counts[c]]
    worst = min(present, key=lambda c: hits[c] / counts[c])
    overall = noise_use.overall(diversity) if diversity else None
    return {
        "per_class": per_class,
        "worst_class": names[worst],
        "worst_class_agreement": float(hits[worst] / counts[worst]),
        "epsilon_diversity": overall,
        "epsilon_diversity_threshold": noise_use.THRESHOLD,
        "classes_ignoring_noise": [name for name, row in per_class.items()
                                   if noise_use.ignores_noise(row["epsilon_diversity"])],
        "noise_use_samples": samples if diversity else None,
        "noise_use_images_per_class": keep if diversity else None,
    }


def _noise_use(inverter, images, vectors, classes, samples, num_classes):
    """`noise_use.epsilon_diversity` of the kept images, or None for a deterministic decoder
    (it has no noise to use, by design) or fewer than two images."""
    if getattr(inverter, "deterministic", False) or len(images) < 2:
        return None
    vectors = np.stack(vectors)
    n = len(vectors)
    repeated = np.repeat(vectors, samples, axis=0)      # image i's K draws are rows iK … iK+K−1
    noise = inverter.sample_noise(n * samples, seed=_NOISE_SEED)
    reconstructions = np.concatenate([
        np.asarray(inverter.generate(repeated[i:i + _GENERATE_BATCH],
                                     noise[i:i + _GENERATE_BATCH]), np.float32)
        for i in range(0, n * samples, _GENERATE_BATCH)])
    reconstructions = reconstructions.reshape(n, samples, *reconstructions.shape[1:])
    return noise_use.epsilon_diversity(reconstructions, classes, np.stack(images), classes,
                                       num_classes)


def warning_lines(report):
    """The warnings `bin/train` prints about a `scores` report: one line per class whose
    agreement is under `WARN_BELOW` (worst first, at most `MAX_WARNINGS`), and one line
    naming the classes whose generator ignores its noise."""
    low = sorted(((row["agreement"], name) for name, row in report["per_class"].items()
                  if row["agreement"] is not None and row["agreement"] < WARN_BELOW))
    lines = [f"warning: class {name!r} has held-out agreement {value:.3f} < {WARN_BELOW:g} "
             f"({report['per_class'][name]['images']} images)"
             for value, name in low[:MAX_WARNINGS]]
    if len(low) > MAX_WARNINGS:
        lines.append(f"warning: {len(low) - MAX_WARNINGS} more classes have held-out agreement "
                     f"< {WARN_BELOW:g} (per_class in metrics.json)")
    ignoring = report["classes_ignoring_noise"]
    if ignoring:
        values = ", ".join(f"{name} {report['per_class'][name]['epsilon_diversity']:.3f}"
                           for name in ignoring[:MAX_WARNINGS])
        more = f" and {len(ignoring) - MAX_WARNINGS} more" if len(ignoring) > MAX_WARNINGS else ""
        lines.append(f"warning: the generator ignores its noise for {len(ignoring)} class(es) "
                     f"(ε-diversity < {report['epsilon_diversity_threshold']:g}: {values}{more})")
    return lines


def summary(report):
    """The part of `bin/train`'s final line about classes: the worst one and the noise use."""
    worst = report["worst_class"]
    text = (f"worst class {worst} {report['worst_class_agreement']:.3f} "
            f"({report['per_class'][worst]['images']} images)")
    if report["epsilon_diversity"] is not None:
        text += f"; ε-diversity {report['epsilon_diversity']:.2f}"
    return text
