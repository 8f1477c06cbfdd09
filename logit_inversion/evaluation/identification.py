"""Instance identification: does a reconstruction carry more than its class?

For each original x_i, its own reconstruction x̂_i is ranked among the reconstructions of N
other test images *of the same class* (the "candidates"), by a pixel-space similarity. If the
logits kept only the class, every candidate would be an equally good match and the top-1
accuracy would be chance, 1/(N+1); anything above chance is information beyond the label
that survived Φ and the inverter. The reverse direction ranks the originals of the same
N+1 images for each reconstruction.

Only N+1 comparisons per image are made (not all pairs), so SSIM stays cheap.

Example:
    >>> result = identification(originals, reconstructions, labels, num_distractors=9)
    >>> float(result["l2"]), float(result["chance"])       # e.g. 0.31, 0.1
"""

import numpy as np
import tensorflow as tf

METRICS = ("l2", "ssim")


def sample_candidates(labels, num_distractors=9, seed=0):
    """For each row, its own index followed by `num_distractors` random other rows of its class.

    Args:
        labels: int `[n]`.
        num_distractors: N ≥ 1; every class present needs at least N+1 rows.
        seed: the draw is a pure function of (labels, N, seed).

    Returns:
        int32 `[n, N + 1]`, column 0 = the row itself.
    """
    labels = np.asarray(labels).reshape(-1)
    if num_distractors < 1:
        raise ValueError(
            f"num_distractors must be ≥ 1. Received: num_distractors={num_distractors}")
    rng = np.random.default_rng(seed)
    candidates = np.empty((len(labels), num_distractors + 1), np.int32)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) <= num_distractors:
            raise ValueError(
                f"Class {label} has {len(members)} images; identification among "
                f"num_distractors={num_distractors} others needs at least {num_distractors + 1} "
                f"per class (use more images or fewer distractors). Received: "
                f"num_distractors={num_distractors}")
        for row in members:
            others = members[members != row]
            candidates[row, 0] = row
            candidates[row, 1:] = rng.choice(others, num_distractors, replace=False)
    return candidates


def pair_similarity(a, b, metric):
    """Similarity of image pairs `[m, h, w, 3]` ×2 → `[m]`; higher = more alike.

    `l2`: minus the mean squared pixel difference; `ssim`: SSIM (window 11 where the images
    allow it, else their side).
    """
    if metric == "l2":
        return -tf.reduce_mean(tf.math.squared_difference(a, b), axis=(1, 2, 3))
    if metric == "ssim":
        side = min(int(a.shape[1]), int(a.shape[2]), 11)
        return tf.image.ssim(a, b, max_val=2.0, filter_size=side)
    raise ValueError(f"Unknown metric; expected one of {METRICS}. Received: metric={metric!r}")


def top1_from_similarities(similarities):
    """Top-1 accuracy from `[n, N + 1]` similarities whose column 0 is the true match.

    A tie with the best distractor earns a fractional credit 1/(1 + number tied), so
    indistinguishable candidates (e.g. a constant reconstruction) score exactly chance.
    """
    own = similarities[:, :1]
    others = similarities[:, 1:]
    beaten = tf.reduce_any(others > own, axis=1)
    ties = tf.reduce_sum(tf.cast(others == own, tf.float32), axis=1)
    credit = tf.where(beaten, 0.0, 1.0 / (1.0 + ties))
    return tf.reduce_mean(credit)


def identification(originals, reconstructions, labels, num_distractors=9, metrics=METRICS,
                   seed=0, candidates=None):
    """Top-1 instance identification, forward and reverse, for each pixel metric.

    Args:
        originals: `[n, h, w, 3]` in [-1, 1].
        reconstructions: `[n, h, w, 3]`, row i reconstructs original i.
        labels: int `[n]`, the class that defines each image's distractors (true labels).
        num_distractors: N, other same-class images each original is compared against.
        metrics: subset of `("l2", "ssim")`.
        seed: seed of the candidate draw (ignored when `candidates` is given).
        candidates: optional int `[n, N + 1]` from `sample_candidates`, to score several
            models on exactly the same candidate sets.

    Returns:
        A dict of scalar float32 tensors: for each metric m, `m` (original → its
        reconstruction among N+1 reconstructions) and `m_reverse` (reconstruction → its
        original among N+1 originals); and `chance` = 1/(N+1).
    """
    originals = tf.cast(tf.convert_to_tensor(originals), tf.float32)
    reconstructions = tf.cast(tf.convert_to_tensor(reconstructions), tf.float32)
    if originals.shape != reconstructions.shape:
        raise ValueError("originals and reconstructions must have the same shape. Received: "
                         f"{originals.shape} and {reconstructions.shape}")
    if candidates is None:
        candidates = sample_candidates(labels, num_distractors, seed)
    candidates = tf.convert_to_tensor(candidates, tf.int32)
    n, width = candidates.shape
    if n != originals.shape[0]:
        raise ValueError(f"candidates must have one row per image ({originals.shape[0]}). "
                         f"Received: candidates.shape={tuple(candidates.shape)}")
    flat = tf.reshape(candidates, [-1])
    anchors = tf.repeat(tf.range(n), width)
    out = {"chance": tf.constant(1.0 / width)}
    for metric in metrics:
        forward = pair_similarity(tf.gather(originals, anchors),
                                  tf.gather(reconstructions, flat), metric)
        reverse = pair_similarity(tf.gather(reconstructions, anchors),
                                  tf.gather(originals, flat), metric)
        out[metric] = top1_from_similarities(tf.reshape(forward, (n, width)))
        out[f"{metric}_reverse"] = top1_from_similarities(tf.reshape(reverse, (n, width)))
    return out
