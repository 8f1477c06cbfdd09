"""Noise use: how much an inverter's reconstructions of the same logits differ across ε,
measured against how much real images of that class differ.

Definition (per class c, classes taken from Φ(x)'s top-1):

    D_ε(c)    = mean, over images x of class c, of the mean RMS pixel distance between all
                pairs of its K reconstructions G(Φ(x), ε_1) … G(Φ(x), ε_K);
    D_real(c) = mean RMS pixel distance between all pairs of distinct real images of class c;
    ε-diversity(c) = D_ε(c) / D_real(c).

RMS pixel distance: sqrt(mean over pixels and channels of (a − b)²), images in [-1, 1]; the
ratio has no unit. 1.0 means a sampler whose draws for one logit vector are as different as two
real images of the class (a perfect sampler for a classifier that is invariant to every
nuisance factor); a generator that ignores ε scores about 0. A model's ε-diversity is the mean
over its classes (each class counts once, so a rare class is not outvoted).

Threshold (`THRESHOLD` = 0.2), from the shipped `shapes` data: real images of one class differ
in shape and background hue, position, scale and rotation. For 200 rendered images per class,
a second image that redraws one factor group and keeps the others (a sampler that uses its
noise for that group only) gives these ε-diversities (min–max over the six classes):

    every factor redrawn (a perfect sampler)               0.99 – 1.02
    both hues only                                         0.81 – 0.89
    position only                                          0.63 – 0.83
    scale only                                             0.26 – 0.46
    rotation only                                          0.00 – 0.53 (0: circle, ring)
    nothing; each sample the image plus independent
    pixel noise of std 0.03 in [0, 1] units                0.12 – 0.19

The last row is what a collapsed demo inverter looked like (per-pixel std across ε ≈ 0.03 for
plus, ring and star: eight near-identical samples). So a generator that varies even one of hue,
position or scale as real images do scores above 0.26, and one whose samples differ only by
that faint jitter scores below 0.19; 0.2 separates the two. Below it, the samples of one logit
vector differ less than real images that differ only in size, and an invariance figure of the
model shows the generator's collapse, not what Φ ignores. Rotation alone is not a yardstick:
for symmetric shapes it changes nothing.

ε-diversity measures noise use only: an untrained generator, whose samples are noise-driven
blobs, scores high (0.7 for the tests' tiny random inverter). Read it beside the agreement,
which says whether the samples show the class.

For scale on natural images, the shipped CIFAR-10 inverters (64 test images × 8 ε, seed 0):
standard 0.49 (classes 0.30 – 0.62), robust 0.73 (0.62 – 0.86). The standard one's samples
keep one layout but change brightness, contrast and texture, as much at 8 × 8 average-pooled
resolution as at full; by this measure it uses its noise, half as much as the robust one.
"""

import numpy as np

THRESHOLD = 0.2

NOT_TESTABLE = "not testable: the generator ignores ε"


def pairwise_distance(images):
    """Mean RMS pixel distance over all pairs of distinct rows of `images` `[n ≥ 2, ...]`.

    Computed from the Gram matrix, so n in the hundreds costs one matrix product.
    """
    x = np.asarray(images, np.float64)
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"Expected images [n ≥ 2, ...]. Received: images.shape={x.shape}")
    x = x.reshape(len(x), -1)
    squared = np.square(x).sum(-1)
    gram = x @ x.T
    # Rounding can make the squared distance of near-equal rows slightly negative.
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * gram, 0.0)
                       / x.shape[1])
    upper = np.triu_indices(len(x), k=1)
    return float(distance[upper].mean())


def epsilon_diversity(samples, classes, real_images, real_classes, num_classes):
    """Per-class ε-diversity (see the module docstring).

    Args:
        samples: `[n, K ≥ 2, h, w, c]`: K reconstructions of each of n logit vectors.
        classes: int `[n]`, the class of each logit vector (Φ(x)'s top-1).
        real_images: `[m, h, w, c]`, real images (the n originals or more).
        real_classes: int `[m]`, their classes (by the same rule as `classes`).
        num_classes: the number of classes.

    Returns:
        A list with one dict per class c: `images` (logit vectors of c), `epsilon_distance`
        D_ε(c), `real_distance` D_real(c) and `epsilon_diversity`; each number is None where
        its class has no logit vector, fewer than two real images, or real images all equal.
    """
    samples = np.asarray(samples)
    classes = np.asarray(classes).reshape(-1)
    real_images = np.asarray(real_images)
    real_classes = np.asarray(real_classes).reshape(-1)
    if samples.ndim < 3 or samples.shape[1] < 2 or len(samples) != len(classes):
        raise ValueError(f"Expected samples [n, K ≥ 2, ...] with n = len(classes) = "
                         f"{len(classes)}. Received: samples.shape={samples.shape}")
    if len(real_images) != len(real_classes) or real_images.shape[1:] != samples.shape[2:]:
        raise ValueError(f"Expected real_images [m, {', '.join(map(str, samples.shape[2:]))}] "
                         f"with m = len(real_classes) = {len(real_classes)}. Received: "
                         f"real_images.shape={real_images.shape}")
    rows = []
    for c in range(num_classes):
        mine = classes == c
        real = real_images[real_classes == c]
        spread = (float(np.mean([pairwise_distance(s) for s in samples[mine]]))
                  if mine.any() else None)
        reference = pairwise_distance(real) if len(real) >= 2 else None
        ratio = (spread / reference if spread is not None and reference else None)
        rows.append({"images": int(mine.sum()), "epsilon_distance": spread,
                     "real_distance": reference, "epsilon_diversity": ratio})
    return rows


def overall(per_class):
    """A model's ε-diversity: the mean of its classes' (those with a value), or None."""
    values = [row["epsilon_diversity"] for row in per_class
              if row["epsilon_diversity"] is not None]
    return float(np.mean(values)) if values else None


def ignores_noise(value, threshold=THRESHOLD):
    """Whether an ε-diversity says the generator ignores its noise (None: unknown → False)."""
    return value is not None and value < threshold


def warning(value, threshold=THRESHOLD):
    """The one-line warning for a model whose ε-diversity is below `threshold`."""
    return (f"the generator ignores its noise (ε-diversity {value:.3f} < {threshold:g}): "
            "invariance figures of this model are not meaningful")
