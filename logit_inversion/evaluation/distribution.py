"""Distances between the feature distributions of real images and reconstructions.

Features are `[n, d]` (e.g. a classifier's penultimate activations); both return a scalar
float64 tensor. Computed in float64 with an eigendecomposition, so no SciPy is needed.
"""

import tensorflow as tf


def _features(x, name):
    x = tf.cast(tf.convert_to_tensor(x), tf.float64)
    if x.shape.rank != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be [n ≥ 2, d] features. Received: {name}.shape={x.shape}")
    return x


def _mean_cov(x):
    mean = tf.reduce_mean(x, axis=0)
    centred = x - mean
    cov = tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(x)[0] - 1, x.dtype)
    return mean, cov


def _sqrt_psd(matrix):
    values, vectors = tf.linalg.eigh(matrix)
    return (vectors * tf.sqrt(tf.maximum(values, 0.0))) @ tf.transpose(vectors)


def frechet_distance(features_a, features_b):
    """‖μa − μb‖² + tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½), Gaussians fitted to each set (FID's
    formula). `[n, d]`, `[m, d]` → scalar; 0 for identical sets.

    tr((Σa Σb)^½) is computed as tr((Σa^½ Σb Σa^½)^½), whose argument is symmetric PSD.
    """
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature widths differ. Received: {a.shape[1]} and {b.shape[1]}")
    mean_a, cov_a = _mean_cov(a)
    mean_b, cov_b = _mean_cov(b)
    root_a = _sqrt_psd(cov_a)
    cross = tf.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = tf.reduce_sum(tf.sqrt(tf.maximum(cross, 0.0)))
    return (tf.reduce_sum(tf.square(mean_a - mean_b))
            + tf.linalg.trace(cov_a) + tf.linalg.trace(cov_b) - 2.0 * trace_root)


def _off_diagonal_mean(kernel, m):
    # The unbiased estimator leaves out k(x, x): those terms are larger than any cross term.
    return (tf.reduce_sum(kernel) - tf.linalg.trace(kernel)) / (m * (m - 1))


def kernel_inception_distance(features_a, features_b, num_subsets=10, subset_size=1000, seed=0):
    """KID: the unbiased MMD² with the cubic kernel k(x, y) = (x·y / d + 1)³, averaged over
    `num_subsets` random subsets of `min(subset_size, n, m)` rows of each set.

    `[n, d]`, `[m, d]` → scalar; its expectation is 0 when both sets come from one
    distribution (single estimates may be slightly negative).
    """
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    d = tf.cast(tf.shape(a)[1], tf.float64)
    size = min(subset_size, int(a.shape[0]), int(b.shape[0]))
    generator = tf.random.Generator.from_seed(seed)
    estimates = []
    for _ in range(num_subsets):
        x = tf.gather(a, tf.argsort(generator.uniform([a.shape[0]]))[:size])
        y = tf.gather(b, tf.argsort(generator.uniform([b.shape[0]]))[:size])
        kxx = (x @ tf.transpose(x) / d + 1.0) ** 3
        kyy = (y @ tf.transpose(y) / d + 1.0) ** 3
        kxy = (x @ tf.transpose(y) / d + 1.0) ** 3
        m = tf.cast(size, tf.float64)
        estimates.append(_off_diagonal_mean(kxx, m) + _off_diagonal_mean(kyy, m)
                         - 2.0 * tf.reduce_mean(kxy))
    return tf.reduce_mean(tf.stack(estimates))
