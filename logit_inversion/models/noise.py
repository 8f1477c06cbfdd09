"""Seed → ε: the one convention for the noise of a reconstruction outside the training step.

Row i of `noise_from_seeds(seeds, Z)` is `tf.random.stateless_normal([Z], seed=[seeds[i], 0])`:
a pure function of that one seed, equal in any batch, in any process and on either side of an
export. It is the convention the exported SavedModel computes inside its graph (the
`reconstruct` signature's `noise` output; `serving.export`), so exports already shipped fix it,
and everything else draws ε here: the TensorBoard grid and `reconstructions.png` of training,
`bin/evaluate`, `bin/analyze`, `bin/reconstruct` and `bin/explore`.

A batch drawn from one seed s (`noise(n, Z, s)`) gives image i the seed s + i: the seeds a
client sends to `reconstruct` for the same ε are `batch_seeds(n, s)`, and
`bin/reconstruct --seed=s` (one sample per image) and `bin/explore` (sample j of a view:
s + j) follow the same rule. (A scalar seed sent to `reconstruct` is shared by the whole
request, as the signature has always done: every image then gets ε of that one seed.)

The training step's own noise (`LogitInverter._noise`, a function of the config's seed, a
stream, the step and the replica) is another thing and is not drawn here.
"""

import numbers

import numpy as np
import tensorflow as tf


def noise_from_seeds(seeds, noise_dim):
    """Standard normal noise `[B, noise_dim]` whose row i depends only on `seeds[i]`.

    Args:
        seeds: int64 `[B]` (a tensor or anything `tf.cast` takes).
        noise_dim: Z.

    Returns:
        float32 `[B, noise_dim]`; equal seeds give equal rows, in any batch.
    """
    noise_dim = _positive_int("noise_dim", noise_dim)
    if tf.executing_eagerly():
        # Eagerly, `map_fn` runs row by row in Python (seconds for a thousand rows); traced,
        # it is one op. The kernels are the same, so are the bits.
        return _traced(tf.convert_to_tensor(seeds), noise_dim)
    return _rows(seeds, noise_dim)


def _rows(seeds, noise_dim):
    """The ops of `noise_from_seeds`, as the export's graph holds them."""
    return tf.map_fn(
        lambda seed: tf.random.stateless_normal(
            [noise_dim], seed=tf.stack([seed, tf.constant(0, tf.int64)])
        ),
        tf.cast(seeds, tf.int64),
        fn_output_signature=tf.TensorSpec([noise_dim], tf.float32),
    )


def batch_seeds(n, seed):
    """Per-image seeds of `n` images drawn from `seed`: int64 `[seed, …, seed + n − 1]`."""
    n = _count("n", n)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer. Received: seed={seed!r}")
    return np.arange(int(seed), int(seed) + n, dtype=np.int64)


def noise(n, noise_dim, seed):
    """ε of a batch of `n` images drawn from one `seed`: float32 tensor `[n, noise_dim]`,
    row i `noise_from_seeds([seed + i])`."""
    return noise_from_seeds(tf.constant(batch_seeds(n, seed)), noise_dim)


_traced = tf.function(_rows, reduce_retracing=True)


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value!r}")
    return int(value)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)
