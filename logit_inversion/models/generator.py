"""The logit-conditioned BigGAN generator G(logits, noise) → image in [-1, 1].

BigGAN's one-hot class embedding is replaced by a learned linear projection of the logits
(Teterwak et al. 2021). BigGAN: the noise is split into one chunk for the input layer and
one per block ("hierarchical latents"); each block's chunk is concatenated with the logit
projection and drives that block's conditional batch norm. BigGAN-deep: the whole noise is
concatenated with the projection, fed to the input layer and to every block, and the blocks
are bottlenecked with two per resolution.
"""

import keras
from keras import ops

from logit_inversion.models import arch
from logit_inversion.models.layers import (BatchNorm, ConditionalBatchNorm, SNConv2D,
                                           SNDense, SelfAttention)


def _upsample(x):
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


class GBlock(keras.layers.Layer):
    """BigGAN up-block: CBN-ReLU-up-conv3 → CBN-ReLU-conv3, plus up-conv1 shortcut."""

    def __init__(self, out_channels, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = out_channels

    def build(self, x_shape, cond_shape=None):
        self.bn1 = ConditionalBatchNorm(name="bn1")
        self.conv1 = SNConv2D(self.out_channels, 3, name="conv1")
        self.bn2 = ConditionalBatchNorm(name="bn2")
        self.conv2 = SNConv2D(self.out_channels, 3, name="conv2")
        self.skip = SNConv2D(self.out_channels, 1, name="skip")

    def call(self, x, cond, training=False):
        h = ops.relu(self.bn1(x, cond, training=training))
        h = self.conv1(_upsample(h), training=training)
        h = ops.relu(self.bn2(h, cond, training=training))
        h = self.conv2(h, training=training)
        return h + self.skip(_upsample(x), training=training)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels}


class DeepGBlock(keras.layers.Layer):
    """BigGAN-deep bottleneck block (1×1 → 3×3 → 3×3 → 1×1), optional 2× upsampling.

    The shortcut drops channels (keeps the first `out` ones) instead of a learned 1×1 conv.
    """

    def __init__(self, out_channels, upsample, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.upsample = upsample

    def build(self, x_shape, cond_shape=None):
        mid = max(x_shape[-1] // 4, 1)
        self.bns = [ConditionalBatchNorm(name=f"bn{i}") for i in range(4)]
        self.convs = [SNConv2D(mid, 1, name="conv0"), SNConv2D(mid, 3, name="conv1"),
                      SNConv2D(mid, 3, name="conv2"),
                      SNConv2D(self.out_channels, 1, name="conv3")]

    def call(self, x, cond, training=False):
        h = x
        for i, (bn, conv) in enumerate(zip(self.bns, self.convs)):
            h = ops.relu(bn(h, cond, training=training))
            if i == 1 and self.upsample:
                h = _upsample(h)
            h = conv(h, training=training)
        skip = x[..., :self.out_channels]
        if self.upsample:
            skip = _upsample(skip)
        return h + skip

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels,
                "upsample": self.upsample}


class Generator(keras.layers.Layer):
    """G(logits, noise): `[batch, K]`, `[batch, noise_dim]` → `[batch, R, R, 3]` in [-1, 1].

    Args:
        resolution: output size R (32, 64, 128; 256 for BigGAN).
        ch: base width (BigGAN 128 px: 96).
        noise_dim: length of the noise vector (BigGAN: 120, BigGAN-deep: 128).
        embed_dim: width of the learned logit projection (BigGAN's shared embedding: 128).
        attention_resolution: put a self-attention block after the block at this size
            (0 = none).
        deep: BigGAN-deep instead of BigGAN.
        multipliers: optional per-block out-channel multipliers overriding `arch.GENERATOR`.
        logit_scale: fixed factor on the logits before their projection (1 = the paper).
            The projection is spectrally normalised, so the conditioning's size follows the
            logits': a confident classifier's logits (norm ~20) swamp a noise chunk (norm
            ~4) in every conditional batch norm, where BigGAN's one-hot embedding does not.

    Example:
        g = Generator(resolution=32, ch=8, noise_dim=24)
        images = g(keras.random.normal((2, 10)), keras.random.normal((2, 24)))
    """

    def __init__(self, resolution=128, ch=96, noise_dim=120, embed_dim=128,
                 attention_resolution=64, deep=False, multipliers=None, logit_scale=1.0,
                 **kwargs):
        super().__init__(**kwargs)
        if not logit_scale > 0:
            raise ValueError(f"`logit_scale` must be positive. Received: logit_scale={logit_scale}")
        self.logit_scale = float(logit_scale)
        self.resolution = resolution
        self.ch = ch
        self.noise_dim = noise_dim
        self.embed_dim = embed_dim
        self.attention_resolution = attention_resolution
        self.deep = deep
        self.multipliers = tuple(multipliers) if multipliers else None
        self.channels = arch.generator_channels(resolution, ch, self.multipliers)
        n_chunks = len(self.channels) + 1
        if not deep and noise_dim % n_chunks:
            raise ValueError(f"BigGAN splits the noise into {n_chunks} equal chunks at "
                             f"{resolution} px; noise_dim must be a multiple of {n_chunks}. "
                             f"Received: noise_dim={noise_dim}")

    @property
    def input_dtype(self):
        # Keras casts call inputs to this dtype (else the compute dtype, bfloat16 under mixed
        # precision), which would round the logits before their float32 projection; the
        # other inputs are cast to the compute dtype in `call`.
        return "float32"

    def build(self, logits_shape, noise_shape=None):
        # float32 whatever the policy: bfloat16 keeps ~3 significant digits of a logit, and
        # small logit differences are what the paper studies (cast after the projection).
        self.embed = SNDense(self.embed_dim, use_bias=False, dtype="float32",
                             name="logit_projection")
        first = self.channels[0][0]
        self.linear = SNDense(4 * 4 * first, name="linear")
        self.blocks, self.attention = [], {}
        res = 4
        for i, (_, out) in enumerate(self.channels):
            if self.deep:
                # Two bottleneck blocks per resolution; the first keeps size and width.
                prev = self.channels[i][0]
                self.blocks.append(DeepGBlock(prev, False, name=f"block{i}a"))
                self.blocks.append(DeepGBlock(out, True, name=f"block{i}b"))
            else:
                self.blocks.append(GBlock(out, name=f"block{i}"))
            res *= 2
            if res == self.attention_resolution:
                self.attention[len(self.blocks) - 1] = SelfAttention(name=f"attention{res}")
        self.out_bn = BatchNorm(name="out_bn")
        self.out_conv = SNConv2D(3, 3, name="out_conv")

    def call(self, logits, noise, training=False):
        y = self.embed(ops.cast(logits, "float32") * self.logit_scale, training=training)
        y = ops.cast(y, self.compute_dtype)
        noise = ops.cast(noise, self.compute_dtype)
        if self.deep:
            cond = ops.concatenate([noise, y], axis=-1)
            conds = [cond] * len(self.blocks)
            h = self.linear(cond, training=training)
        else:
            chunks = ops.split(noise, len(self.channels) + 1, axis=-1)
            conds = [ops.concatenate([c, y], axis=-1) for c in chunks[1:]]
            h = self.linear(chunks[0], training=training)
        h = ops.reshape(h, (-1, 4, 4, self.channels[0][0]))
        for i, block in enumerate(self.blocks):
            cond = conds[i // 2] if self.deep else conds[i]
            h = block(h, cond, training=training)
            if i in self.attention:
                h = self.attention[i](h, training=training)
        h = ops.relu(self.out_bn(h, training=training))
        return ops.cast(ops.tanh(self.out_conv(h, training=training)), "float32")

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution, "ch": self.ch,
                "logit_scale": self.logit_scale,
                "noise_dim": self.noise_dim, "embed_dim": self.embed_dim,
                "attention_resolution": self.attention_resolution, "deep": self.deep,
                "multipliers": self.multipliers}
