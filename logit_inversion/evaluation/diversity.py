"""Diversity across noise: how different are reconstructions that share the same logits?"""

import tensorflow as tf


def mean_pairwise_distance(samples):
    """Mean RMS pixel distance over all pairs of samples drawn at the same logits.

    Args:
        samples: `[K, batch, h, w, 3]` in [-1, 1]: K ≥ 2 reconstructions of each of `batch`
            logit vectors (sample k of image b at `samples[k, b]`).

    Returns:
        Scalar float32 in [0, 2]: 0 when the noise changes nothing (a deterministic decoder).
    """
    samples = tf.cast(tf.convert_to_tensor(samples), tf.float32)
    if samples.shape.rank != 5 or samples.shape[0] < 2:
        raise ValueError("Expected samples [K ≥ 2, batch, h, w, 3]. "
                         f"Received: samples.shape={samples.shape}")
    k = samples.shape[0]
    distances = []
    for i in range(k):
        for j in range(i + 1, k):
            diff = tf.math.squared_difference(samples[i], samples[j])
            distances.append(tf.sqrt(tf.reduce_mean(diff, axis=(1, 2, 3))))
    return tf.reduce_mean(tf.stack(distances))
