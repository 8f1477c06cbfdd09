"""Classifier-space metrics between the logits of originals and of their reconstructions.

All take logits `[batch, K]` (float) and return a scalar float32 tensor, the mean over the batch.
"""

import tensorflow as tf

from logit_inversion.models import metrics


def _float(x):
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def top_k_agreement(logits, reconstruction_logits, k=1):
    """Fraction of rows where the top-1 class of `logits` is among the top-`k` classes of
    `reconstruction_logits`; k=1 is the package's one top-1 agreement
    (`models.metrics.top1_agreement`: the two arg-maxes agree).

    Args:
        logits: Φ(x), `[batch, K]`.
        reconstruction_logits: Φ(x̂), `[batch, K]`.
        k: 1 ≤ k ≤ K.
    """
    logits, reconstruction_logits = _float(logits), _float(reconstruction_logits)
    num_classes = int(logits.shape[-1])
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be in [1, {num_classes}]. Received: k={k}")
    if k == 1:
        return tf.convert_to_tensor(metrics.top1_agreement(logits, reconstruction_logits))
    target = tf.argmax(logits, axis=-1, output_type=tf.int32)
    hit = tf.math.in_top_k(target, reconstruction_logits, k)
    return tf.reduce_mean(tf.cast(hit, tf.float32))


def label_accuracy(reconstruction_logits, labels, k=1):
    """Fraction of rows whose true label is among the top-`k` classes of Φ(x̂).

    Args:
        reconstruction_logits: `[batch, K]`.
        labels: int `[batch]`.
    """
    hit = tf.math.in_top_k(tf.cast(labels, tf.int32), _float(reconstruction_logits), k)
    return tf.reduce_mean(tf.cast(hit, tf.float32))


def logit_cosine(logits, reconstruction_logits):
    """Mean cosine similarity of the logit vectors: agreement in direction, beyond the arg-max."""
    a, b = _float(logits), _float(reconstruction_logits)
    return tf.reduce_mean(
        tf.reduce_sum(tf.math.l2_normalize(a, -1) * tf.math.l2_normalize(b, -1), axis=-1))


def logit_relative_l2(logits, reconstruction_logits):
    """Mean of ‖Φ(x̂) − Φ(x)‖ / ‖Φ(x)‖: 0 when the logits are recovered exactly."""
    a, b = _float(logits), _float(reconstruction_logits)
    return tf.reduce_mean(tf.norm(b - a, axis=-1) / (tf.norm(a, axis=-1) + 1e-12))
