"""Building blocks shared by the generator and the discriminator.

Spectral norm is implemented here rather than with `keras.layers.SpectralNormalization`:
the Keras wrapper rescales the kernel *in place* during training, so gradients never see
sigma(W) and the stored weights drift from what the optimizer (and the EMA copy) track.
BigGAN divides by sigma in the forward pass and keeps the raw weight, which is what we do.

Batch norm is likewise our own, because BigGAN's conditional batch norm needs (a) gains and
biases predicted per example from the conditioning vector, (b) batch statistics synchronized
across replicas, with moving statistics that can be updated from a replica context under
`MirroredStrategy`/`TPUStrategy`, and (c) BigGAN's "standing statistics": batch statistics
recorded over many batches and averaged (`BatchStatisticsRecorder`).

State that every replica computes identically (spectral-norm vectors from mirrored weights,
moving statistics from all-reduced batch statistics) uses `aggregation="only_first_replica"`:
a replica-context assign then takes replica 0's value instead of all-reducing a mean of equal
values, one collective per layer per step saved. (`"none"` would be free on TPU but is
rejected by `MirroredStrategy` in replica context; on-write synchronization, Keras's
`"auto"` default, keeps one mirrored copy per device.)
"""

import threading

import keras
from keras import ops
import tensorflow as tf

# Replica-identical state: see the module docstring.
_REPLICA_IDENTICAL = "only_first_replica"

# The active `BatchStatisticsRecorder`s (innermost last).
_RECORDERS = []


class BatchStatisticsRecorder:
    """Context in which training-mode calls record batch statistics and update no state.

    Inside `with BatchStatisticsRecorder() as recorder:`, a training-mode call of
    `ConditionalBatchNorm` / `BatchNorm` normalises with its (cross-replica) batch statistics
    as usual, but appends `(layer, mean [ch], variance [ch])` to `recorder.statistics` instead
    of updating its moving statistics, and spectral-norm layers leave their `u` vector alone.
    So a forward pass measures the network without changing it: what standing statistics
    need. Statistics are kept per thread, because `MirroredStrategy` traces each replica's
    function in its own thread.

    Example:
        with BatchStatisticsRecorder() as recorder:
            generator(logits, noise, training=True)
        means = [mean for _, mean, _ in recorder.statistics]
    """

    def __init__(self):
        self._local = threading.local()

    @property
    def statistics(self):
        if not hasattr(self._local, "statistics"):
            self._local.statistics = []
        return self._local.statistics

    def clear(self):
        self._local.statistics = []

    def __enter__(self):
        _RECORDERS.append(self)
        return self

    def __exit__(self, *exc_info):
        _RECORDERS.remove(self)


def _active_recorder():
    return _RECORDERS[-1] if _RECORDERS else None


def batch_norm_layers(model):
    """Every batch-norm layer (`ConditionalBatchNorm`, `BatchNorm`) of a built `model`, in
    the order its attributes hold them."""
    return [layer for layer in sublayers(model)
            if isinstance(layer, (ConditionalBatchNorm, BatchNorm))]


def sublayers(layer):
    """Every Keras layer under `layer`, depth first, each once: those it holds as attributes,
    directly or in lists, tuples and dicts (how the generator keeps its blocks)."""
    found, seen = [], {id(layer)}

    def visit(value):
        if isinstance(value, keras.layers.Layer):
            if id(value) not in seen:
                seen.add(id(value))
                found.append(value)
                for child in vars(value).values():
                    visit(child)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    for child in vars(layer).values():
        visit(child)
    return found


def _l2_normalize(x, eps=1e-12):
    return x / ops.sqrt(ops.sum(ops.square(x)) + eps)


class _SpectralNormMixin:
    """Adds a power-iteration estimate of the largest singular value of `self.kernel`."""

    def _build_u(self, out_dim):
        # One persistent left singular vector estimate, identical on every replica.
        self.u = self.add_weight(
            name="sn_u", shape=(1, out_dim), trainable=False, aggregation=_REPLICA_IDENTICAL,
            initializer=keras.initializers.RandomNormal(stddev=1.0), autocast=False,
        )

    def _normalized_kernel(self, training):
        w = ops.cast(self.kernel.value, "float32")
        w_mat = ops.reshape(w, (-1, w.shape[-1]))
        u = self.u.value
        v = _l2_normalize(ops.matmul(u, ops.transpose(w_mat)))
        u_new = _l2_normalize(ops.matmul(v, w_mat))
        u_new = ops.stop_gradient(u_new)
        v = ops.stop_gradient(v)
        sigma = ops.sum(ops.matmul(v, w_mat) * u_new)
        if training and _active_recorder() is None:
            self.u.assign(u_new)
        return ops.cast(w / sigma, self.compute_dtype)


class SNDense(_SpectralNormMixin, keras.layers.Layer):
    """Dense layer with spectral norm and orthogonal init.

    Args:
        units: output width.
        use_bias: add a bias (after normalization, as in BigGAN).
    Input `[batch, in]` → output `[batch, units]`.
    """

    def __init__(self, units, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.use_bias = use_bias

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.units),
            initializer=keras.initializers.Orthogonal(),
        )
        self.bias = (self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
                     if self.use_bias else None)
        self._build_u(self.units)

    def call(self, x, training=False):
        y = ops.matmul(x, self._normalized_kernel(training))
        return y + self.bias if self.use_bias else y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias}


class SNConv2D(_SpectralNormMixin, keras.layers.Layer):
    """'same'-padded 2-D convolution with spectral norm and orthogonal init.

    Input `[batch, h, w, c_in]` → output `[batch, h, w, filters]`.
    """

    def __init__(self, filters, kernel_size=3, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.use_bias = use_bias

    def build(self, input_shape):
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel", shape=(k, k, input_shape[-1], self.filters),
            initializer=keras.initializers.Orthogonal(),
        )
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)
        self._build_u(self.filters)

    def call(self, x, training=False):
        y = ops.conv(x, self._normalized_kernel(training), padding="same")
        return y + self.bias if self.use_bias else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "use_bias": self.use_bias}


def _replica_mean(x):
    """Mean over replicas of a per-replica statistic (identity outside a strategy)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, x)


def _add_moving_statistics(layer, channels):
    # Updated in replica context from all-reduced batch statistics: identical per replica.
    layer.moving_mean = layer.add_weight(
        name="moving_mean", shape=(channels,), initializer="zeros", trainable=False,
        aggregation=_REPLICA_IDENTICAL, autocast=False)
    layer.moving_var = layer.add_weight(
        name="moving_var", shape=(channels,), initializer="ones", trainable=False,
        aggregation=_REPLICA_IDENTICAL, autocast=False)


def _statistics(layer, x, training):
    """(mean, variance) per channel: cross-replica batch statistics while training (and the
    moving averages updated, or the statistics recorded if a `BatchStatisticsRecorder` is
    active), the moving averages at inference."""
    if not training:
        return layer.moving_mean.value, layer.moving_var.value
    xf = ops.cast(x, "float32")
    mean = _replica_mean(ops.mean(xf, axis=(0, 1, 2)))
    mean_sq = _replica_mean(ops.mean(ops.square(xf), axis=(0, 1, 2)))
    var = ops.maximum(mean_sq - ops.square(mean), 0.0)
    recorder = _active_recorder()
    if recorder is not None:
        recorder.statistics.append((layer, mean, var))
        return mean, var
    m = layer.momentum
    layer.moving_mean.assign(m * layer.moving_mean + (1 - m) * mean)
    layer.moving_var.assign(m * layer.moving_var + (1 - m) * var)
    return mean, var


class ConditionalBatchNorm(keras.layers.Layer):
    """BigGAN conditional batch norm with cross-replica batch statistics.

    gain = 1 + W_g c and bias = W_b c are predicted per example from the conditioning
    vector c (logit projection ⊕ noise chunk). Inference uses moving statistics, so a
    served model's output for one image does not depend on the rest of its batch.

    Call: `(x [batch, h, w, ch], cond [batch, d])` → `[batch, h, w, ch]`.
    """

    def __init__(self, momentum=0.9, epsilon=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, x_shape, cond_shape=None):
        ch = x_shape[-1]
        self.gain = SNDense(ch, use_bias=False, name="gain")
        self.offset = SNDense(ch, use_bias=False, name="offset")
        if cond_shape is not None:
            self.gain.build(cond_shape)
            self.offset.build(cond_shape)
        _add_moving_statistics(self, ch)

    def call(self, x, cond, training=False):
        mean, var = _statistics(self, x, training)
        inv = ops.rsqrt(var + self.epsilon)
        x = (x - ops.cast(mean, x.dtype)) * ops.cast(inv, x.dtype)
        gain = 1.0 + self.gain(cond, training=training)
        offset = self.offset(cond, training=training)
        return x * gain[:, None, None, :] + offset[:, None, None, :]

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


class BatchNorm(keras.layers.Layer):
    """Unconditional counterpart of `ConditionalBatchNorm` (the generator's output BN)."""

    def __init__(self, momentum=0.9, epsilon=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, x_shape):
        ch = x_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(ch,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(ch,), initializer="zeros")
        _add_moving_statistics(self, ch)

    def call(self, x, training=False):
        mean, var = _statistics(self, x, training)
        inv = ops.rsqrt(var + self.epsilon)
        scale = ops.cast(inv * self.gamma, x.dtype)
        return (x - ops.cast(mean, x.dtype)) * scale + ops.cast(self.beta, x.dtype)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


class SelfAttention(keras.layers.Layer):
    """BigGAN's non-local block: x + γ·attention(x), γ initialised at 0.

    Keys and values are max-pooled 2× to cut the attention matrix by 4, as in BigGAN.
    Input/output `[batch, h, w, ch]`.
    """

    def build(self, x_shape):
        ch = x_shape[-1]
        self.theta = SNConv2D(max(ch // 8, 1), 1, use_bias=False, name="theta")
        self.phi = SNConv2D(max(ch // 8, 1), 1, use_bias=False, name="phi")
        self.g = SNConv2D(max(ch // 2, 1), 1, use_bias=False, name="g")
        self.out = SNConv2D(ch, 1, use_bias=False, name="out")
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

    def call(self, x, training=False):
        b, h, w = ops.shape(x)[0], x.shape[1], x.shape[2]
        theta = ops.reshape(self.theta(x, training=training), (b, h * w, -1))
        phi = ops.max_pool(self.phi(x, training=training), 2, 2)
        phi = ops.reshape(phi, (b, (h // 2) * (w // 2), -1))
        g = ops.max_pool(self.g(x, training=training), 2, 2)
        g = ops.reshape(g, (b, (h // 2) * (w // 2), -1))
        attn = ops.softmax(ops.matmul(theta, ops.transpose(phi, (0, 2, 1))), axis=-1)
        o = ops.reshape(ops.matmul(attn, g), (b, h, w, -1))
        return x + ops.cast(self.gamma, x.dtype) * self.out(o, training=training)
