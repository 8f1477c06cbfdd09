"""Generator, discriminator and their layers."""

import keras
from keras import ops
import numpy as np
import pytest

from logit_inversion.models import arch
from logit_inversion.models.discriminator import Discriminator
from logit_inversion.models.generator import Generator
from logit_inversion.models.layers import ConditionalBatchNorm, SNConv2D, SNDense


@pytest.mark.parametrize("resolution,deep", [(32, False), (64, False), (64, True)])
def test_generator_output_shape_and_range(resolution, deep):
    g = Generator(resolution=resolution, ch=4, noise_dim=20 if not deep else 16, embed_dim=8,
                  attention_resolution=resolution // 2, deep=deep)
    images = g(keras.random.normal((3, 10)) * 10, keras.random.normal((3, g.noise_dim)),
               training=True)
    assert tuple(images.shape) == (3, resolution, resolution, 3)
    assert float(ops.max(ops.abs(images))) <= 1.0


def test_generator_rejects_noise_not_divisible_into_chunks():
    with pytest.raises(ValueError, match="noise_dim=21"):
        Generator(resolution=32, ch=4, noise_dim=21)


def test_channel_table_errors_name_the_value():
    with pytest.raises(ValueError, match="resolution=48"):
        arch.generator_channels(48, 8)
    with pytest.raises(ValueError, match="multipliers"):
        arch.discriminator_channels(32, 8, multipliers=(1, 2))


def test_spectral_norm_bounds_largest_singular_value():
    layer = SNDense(16)
    x = keras.random.normal((4, 32))
    for _ in range(30):  # power iteration converges over training-mode calls
        layer(x, training=True)
    w = ops.convert_to_numpy(layer._normalized_kernel(training=False))
    assert np.linalg.svd(w, compute_uv=False)[0] == pytest.approx(1.0, abs=0.02)
    conv = SNConv2D(8, 3)
    img = keras.random.normal((2, 8, 8, 5))
    for _ in range(30):
        conv(img, training=True)
    k = ops.convert_to_numpy(conv._normalized_kernel(training=False)).reshape(-1, 8)
    assert np.linalg.svd(k, compute_uv=False)[0] == pytest.approx(1.0, abs=0.02)


def test_conditional_batch_norm_inference_is_per_example():
    bn = ConditionalBatchNorm()
    x = keras.random.normal((8, 4, 4, 6))
    c = keras.random.normal((8, 5))
    for _ in range(3):
        bn(x, c, training=True)
    full = ops.convert_to_numpy(bn(x, c, training=False))
    single = ops.convert_to_numpy(bn(x[:1], c[:1], training=False))
    np.testing.assert_allclose(full[:1], single, rtol=1e-5, atol=1e-5)
    # Training mode normalises with the batch's own statistics.
    out = ops.convert_to_numpy(ConditionalBatchNorm()(x, ops.zeros((8, 5)), training=True))
    assert abs(out.mean()) < 1e-3 and abs(out.std() - 1.0) < 1e-2


def test_projection_discriminator_is_affine_in_logits():
    d = Discriminator(resolution=32, ch=4, attention_resolution=16)
    x = keras.random.normal((2, 32, 32, 3))
    z1, z2 = keras.random.normal((2, 7)), keras.random.normal((2, 7))
    score = lambda z: ops.convert_to_numpy(d(x, z))  # noqa: E731
    lhs = score(z1 + z2) + score(ops.zeros((2, 7)))
    np.testing.assert_allclose(lhs, score(z1) + score(z2), rtol=1e-4, atol=1e-3)
    assert not np.allclose(score(z1), score(z2))


def test_logit_scale_is_the_same_as_scaling_the_logits():
    # G and D must see `logit_scale * z` and nothing else: the same weights fed 5·z with
    # scale 1 give the same output as z with scale 5, and the factor survives get_config.
    z, noise = keras.random.normal((2, 6), seed=1), keras.random.normal((2, 16), seed=2)
    images = keras.random.normal((2, 32, 32, 3), seed=3)
    g1, g5 = (Generator(resolution=32, ch=4, noise_dim=16, embed_dim=8, attention_resolution=0,
                        logit_scale=s) for s in (1.0, 5.0))
    d1, d5 = (Discriminator(resolution=32, ch=4, attention_resolution=0, logit_scale=s)
              for s in (1.0, 5.0))
    for a, b, args in ((g1, g5, (z, noise)), (d1, d5, (images, z))):
        a(*args)
        b(*args)
        b.set_weights(a.get_weights())
        scaled = (args[0], args[1] * 5.0) if a is d1 else (args[0] * 5.0, args[1])
        np.testing.assert_allclose(ops.convert_to_numpy(b(*args)),
                                   ops.convert_to_numpy(a(*scaled)), rtol=1e-4, atol=1e-4)
        assert not np.allclose(ops.convert_to_numpy(b(*args)), ops.convert_to_numpy(a(*args)))
        assert type(b).from_config(b.get_config()).logit_scale == 5.0


@pytest.mark.parametrize("layer", [Generator, Discriminator])
def test_logit_scale_must_be_positive(layer):
    with pytest.raises(ValueError, match="logit_scale=0"):
        layer(resolution=32, ch=4, logit_scale=0)


def test_paper_128_config_builds_and_reports_parameter_counts(monkeypatch):
    """BigGAN 128 px at ch=96 conditioned on 1000 logits: the paper's inverter size."""
    # Counting needs shapes, not values: skip ~1 minute of QR decompositions.
    monkeypatch.setattr(keras.initializers, "Orthogonal", lambda: "zeros")
    g = Generator(resolution=128, ch=96, noise_dim=120, embed_dim=128, attention_resolution=64)
    d = Discriminator(resolution=128, ch=96, attention_resolution=64)
    # Symbolic inputs create every variable without running a 128 px forward pass.
    z = keras.KerasTensor((1, 1000))
    images = g(z, keras.KerasTensor((1, 120)))
    assert tuple(images.shape) == (1, 128, 128, 3)
    d(keras.KerasTensor((1, 128, 128, 3)), z)
    g_params = sum(int(np.prod(w.shape)) for w in g.trainable_weights)
    d_params = sum(int(np.prod(w.shape)) for w in d.trainable_weights)
    print(f"BigGAN-128 inverter: G {g_params / 1e6:.1f} M, D {d_params / 1e6:.1f} M parameters")
    # BigGAN reports 70.4 M (G) and 87.9 M (D) with a 1000-class embedding.
    assert 65e6 < g_params < 76e6
    assert 82e6 < d_params < 94e6


@pytest.fixture
def bfloat16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_logit_projections_stay_float32_under_mixed_bfloat16(bfloat16_policy):
    """bfloat16 keeps ~3 significant digits: 5.000 and 5.001 would be the same logit."""
    g = Generator(resolution=32, ch=4, noise_dim=16, embed_dim=8)
    d = Discriminator(resolution=32, ch=4, attention_resolution=0)
    z1 = np.full((2, 6), 5.0, "float32")
    z2 = z1.copy()
    z2[:, 3] += 1e-3
    noise = keras.random.normal((2, 16))
    images = g(z1, noise)
    d(images, z1)
    assert g.compute_dtype == "bfloat16" and d.compute_dtype == "bfloat16"
    assert g.embed.compute_dtype == "float32"
    assert d.logit_embedding.compute_dtype == "float32"
    p1, p2 = (ops.convert_to_numpy(g.embed(z)) for z in (z1, z2))
    assert p1.dtype == np.float32 and not np.array_equal(p1, p2)
    s1, s2 = (ops.convert_to_numpy(d(images, z)) for z in (z1, z2))
    assert s1.dtype == np.float32 and not np.array_equal(s1, s2)


def test_replica_identical_state_aggregates_from_the_first_replica():
    g = Generator(resolution=32, ch=4, noise_dim=16, embed_dim=8)
    g(keras.random.normal((2, 6)), keras.random.normal((2, 16)))
    state = [v for v in g.weights if v.name in ("sn_u", "moving_mean", "moving_var")]
    assert len(state) > 20
    assert {v.aggregation for v in state} == {"only_first_replica"}
