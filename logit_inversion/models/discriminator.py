"""The projection discriminator D(x, logits) = ψ(φ(x)) + ⟨W·logits, φ(x)⟩.

Miyato & Koyama (2018) project a class embedding onto the pooled features; following
Teterwak et al. (2021) the embedding is a learned linear map of the classifier's logits,
so D judges whether an image is plausible *for those logits*, not just for a class.
"""

import keras
from keras import ops

from logit_inversion.models import arch
from logit_inversion.models.layers import SNConv2D, SNDense, SelfAttention


def _downsample(x):
    return ops.average_pool(x, 2, 2)


class DBlock(keras.layers.Layer):
    """BigGAN down-block; the first block ("optimized") skips the leading ReLU."""

    def __init__(self, out_channels, downsample=True, first=False, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.downsample = downsample
        self.first = first

    def build(self, x_shape):
        self.conv1 = SNConv2D(self.out_channels, 3, name="conv1")
        self.conv2 = SNConv2D(self.out_channels, 3, name="conv2")
        self.learnable_skip = self.downsample or x_shape[-1] != self.out_channels
        if self.learnable_skip:
            self.skip = SNConv2D(self.out_channels, 1, name="skip")

    def call(self, x, training=False):
        h = x if self.first else ops.relu(x)
        h = self.conv1(h, training=training)
        h = self.conv2(ops.relu(h), training=training)
        if self.downsample:
            h = _downsample(h)
        s = x
        if self.first:
            # Pool before the 1×1 conv: same result, 4× cheaper on the largest map.
            s = _downsample(s) if self.downsample else s
            s = self.skip(s, training=training) if self.learnable_skip else s
        else:
            s = self.skip(s, training=training) if self.learnable_skip else s
            s = _downsample(s) if self.downsample else s
        return h + s

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels,
                "downsample": self.downsample, "first": self.first}


class Discriminator(keras.layers.Layer):
    """D(images, logits): `[batch, R, R, 3]` in [-1, 1], `[batch, K]` → scores `[batch]`.

    Args:
        resolution: input size R.
        ch: base width.
        attention_resolution: self-attention after the block that outputs this size (0 = none).
        multipliers: optional per-block channel multipliers overriding `arch.DISCRIMINATOR`.
        logit_scale: fixed factor on the logits before their projection (1 = the paper), as
            in the generator.
    """

    def __init__(self, resolution=128, ch=96, attention_resolution=64, multipliers=None,
                 logit_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        if not logit_scale > 0:
            raise ValueError(f"`logit_scale` must be positive. Received: logit_scale={logit_scale}")
        self.logit_scale = float(logit_scale)
        self.resolution = resolution
        self.ch = ch
        self.attention_resolution = attention_resolution
        self.multipliers = tuple(multipliers) if multipliers else None
        self.channels = arch.discriminator_channels(resolution, ch, self.multipliers)

    @property
    def input_dtype(self):
        # Keras casts call inputs to this dtype (else the compute dtype, bfloat16 under mixed
        # precision), which would round the logits before their float32 projection; the
        # other inputs are cast to the compute dtype in `call`.
        return "float32"

    def build(self, images_shape, logits_shape=None):
        self.blocks, self.attention = [], {}
        res = self.resolution
        for i, (out, down) in enumerate(self.channels):
            self.blocks.append(DBlock(out, down, first=(i == 0), name=f"block{i}"))
            res = res // 2 if down else res
            if res == self.attention_resolution and not self.attention:
                self.attention[i] = SelfAttention(name=f"attention{res}")
        self.psi = SNDense(1, name="psi")
        # float32 whatever the policy, as the generator's logit projection.
        self.logit_embedding = SNDense(self.channels[-1][0], use_bias=False, dtype="float32",
                                       name="logit_embedding")

    def call(self, images, logits, training=False):
        h = ops.cast(images, self.compute_dtype)
        for i, block in enumerate(self.blocks):
            h = block(h, training=training)
            if i in self.attention:
                h = self.attention[i](h, training=training)
        features = ops.sum(ops.relu(h), axis=(1, 2))
        projection = self.logit_embedding(ops.cast(logits, "float32") * self.logit_scale,
                                          training=training)
        score = ops.cast(self.psi(features, training=training)[:, 0], "float32")
        # The inner product stays in float32 too: it is where the logits meet the image.
        return score + ops.sum(projection * ops.cast(features, "float32"), axis=-1)

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution, "ch": self.ch,
                "attention_resolution": self.attention_resolution,
                "multipliers": self.multipliers, "logit_scale": self.logit_scale}
