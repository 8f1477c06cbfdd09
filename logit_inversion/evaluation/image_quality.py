"""Pixel-space similarity between originals and reconstructions: PSNR, SSIM, MS-SSIM.

Images are `[batch, h, w, 3]` in [-1, 1] (dynamic range 2); each function returns one value per
image, `[batch]` float32, so that callers choose how to aggregate (PSNR is +inf for an exact
copy).
"""

import tensorflow as tf

_MAX_VAL = 2.0   # [-1, 1]
# tf.image.ssim_multiscale's defaults: five scales and an 11-px Gaussian window.
MS_SSIM_SCALES = 5
SSIM_FILTER_SIZE = 11


def _pair(images, reconstructions):
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    reconstructions = tf.cast(tf.convert_to_tensor(reconstructions), tf.float32)
    if images.shape != reconstructions.shape or images.shape.rank != 4:
        raise ValueError("Expected two image batches of the same shape [batch, h, w, 3]. "
                         f"Received: shapes {images.shape} and {reconstructions.shape}")
    return images, reconstructions


def psnr(images, reconstructions):
    """Peak signal-to-noise ratio in dB, `[batch]`; +inf where the images are identical."""
    return tf.image.psnr(*_pair(images, reconstructions), max_val=_MAX_VAL)


def ssim(images, reconstructions):
    """Structural similarity (Gaussian window 11, σ 1.5), `[batch]` in [-1, 1]; 1 = identical."""
    return tf.image.ssim(*_pair(images, reconstructions), max_val=_MAX_VAL)


def ms_ssim_min_size(scales=MS_SSIM_SCALES, filter_size=SSIM_FILTER_SIZE):
    """The smallest side MS-SSIM accepts: each of its `scales − 1` halvings must leave at least
    a full filter window (176 px with the defaults)."""
    return filter_size * 2 ** (scales - 1)


def ms_ssim(images, reconstructions):
    """Multi-scale SSIM with TF's default five power factors, `[batch]`.

    Raises ValueError below `ms_ssim_min_size()` pixels (e.g. at 32 px) rather than silently
    using fewer scales, which would make the numbers incomparable with published ones.
    """
    images, reconstructions = _pair(images, reconstructions)
    side = min(int(images.shape[1]), int(images.shape[2]))
    if side < ms_ssim_min_size():
        raise ValueError(f"MS-SSIM with {MS_SSIM_SCALES} scales and an {SSIM_FILTER_SIZE}-px "
                         f"window needs images of at least {ms_ssim_min_size()} px. "
                         f"Received: size={side}")
    return tf.image.ssim_multiscale(images, reconstructions, max_val=_MAX_VAL)
