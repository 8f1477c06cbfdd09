"""`load(path)`: an exported inverter as a Python object with numpy in, numpy out.

The object calls the SavedModel's serving signatures (see `logit_inversion.serving.export`), so it
computes exactly what TF Serving would return for the same request.
"""

import json
import os

import numpy as np
import tensorflow as tf

from logit_inversion.models import noise as noise_lib
from logit_inversion.serving import export


def load(path):
    """Loads an inverter exported by `export.export_inverter`.

    Args:
        path: a version folder (`savedmodels/NAME/3`), or a model folder (`savedmodels/NAME`),
            of which the newest version is loaded.

    Returns:
        A `LoadedInverter`.

    Example:
        >>> inverter = load("savedmodels/demo")
        >>> out = inverter.reconstruct(images, seed=0)  # images: uint8 [B, H, W, 3]
        >>> out["reconstructions"].shape  # (B, R, R, 3), uint8
    """
    return LoadedInverter(resolve_version(path))


def model_metadata(path):
    """The `metadata.json` of a model folder (`savedmodels/NAME`), read from the folder itself
    or, for a version folder (`savedmodels/NAME/3`), from its parent; {} when there is none.

    Shipped inverters record there the classifier they invert and the data they were trained
    on, so tools can default to them as they do for a training workdir."""
    path = os.fspath(path).rstrip("/")
    for folder in (path, os.path.dirname(path)):
        candidate = os.path.join(folder, "metadata.json")
        if folder and tf.io.gfile.exists(candidate):
            with tf.io.gfile.GFile(candidate) as f:
                return json.load(f)
    return {}


def resolve_version(path):
    """`path` if it holds a SavedModel, else its newest numeric version folder."""
    path = os.fspath(path)
    if tf.saved_model.contains_saved_model(path):
        return path
    versions = []
    if tf.io.gfile.isdir(path):   # gfile: `gs://` model folders too; GCS lists "3/" for a folder
        versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(path)
                    if name.rstrip("/").isdigit()]
    if not versions:
        if os.path.basename(os.path.normpath(path)).isdigit():
            raise ValueError(
                f"Version folder {path} holds no SavedModel (no saved_model.pb): an interrupted "
                f"copy? Export again or load another version. Received: path={path}"
            )
        raise ValueError(
            "Expected a SavedModel folder or a model folder with numeric version folders. "
            f"Received: path={path}"
        )
    newest = os.path.join(path, str(max(versions)))
    if not tf.saved_model.contains_saved_model(newest):
        # TF Serving would try (and fail) to serve this version too, so it is not skipped.
        raise ValueError(
            f"The newest version folder {newest} holds no SavedModel (no saved_model.pb): an "
            "interrupted copy? Remove it, or load an older version folder directly. "
            f"Received: path={path}"
        )
    return newest


class LoadedInverter:
    """An exported inverter, loaded with `tf.saved_model.load`.

    Images are uint8 RGB `[B, H, W, 3]` in [0, 255] of any size (resized to R inside the
    model); logits are float32 `[B, K]` and noise float32 `[B, Z]`. Methods take numpy arrays
    or tensors and return numpy arrays. Images of another dtype are refused with a ValueError
    (integers already in [0, 255] excepted) rather than cast: a cast would turn floats in
    [0, 1] black and wrap 300 to 44. Seeds must be one int or one per image.

    Args:
        path: a SavedModel folder written by `export.export_inverter`.

    Attributes:
        resolution: R, the side of the generated images.
        noise_dim: Z.
        num_classes: K, the width of the logits.
    """

    def __init__(self, path):
        self.path = path
        if not tf.saved_model.contains_saved_model(path):
            raise ValueError(
                f"{path} holds no SavedModel (no saved_model.pb). Received: path={path}"
            )
        self.saved_model = tf.saved_model.load(path)
        self.signatures = self.saved_model.signatures
        missing = [name for name in export.SIGNATURES if name not in self.signatures]
        if missing:
            raise ValueError(
                f"Expected a SavedModel with signatures {export.SIGNATURES}. "
                f"Received: path={path} without {missing}"
            )
        # The outputs of `reconstruct` have static trailing sizes: [B, R, R, 3], [B, K], [B, Z].
        outputs = self.signatures[export.RECONSTRUCT].structured_outputs
        self.resolution = int(outputs["reconstructions"].shape[1])
        self.num_classes = int(outputs["logits"].shape[-1])
        self.noise_dim = int(outputs["noise"].shape[-1])

    def reconstruct(self, images, seed=export.DEFAULT_SEED):
        """G(Φ(x), z): images → reconstructions, with the noise drawn from `seed`.

        Args:
            images: uint8 `[B, H, W, 3]`.
            seed: an int, or one int per image `[B]`; equal seeds give equal noise.

        Returns:
            A dict of numpy arrays: `reconstructions` uint8 `[B, R, R, 3]`, `logits` float32
            `[B, K]` (Φ of the resized images) and `noise` float32 `[B, Z]`.
        """
        images = _uint8_images(images)
        return self._call(
            export.RECONSTRUCT,
            images=images,
            seed=_seeds(seed, images.shape[0] if images.shape.rank else None),
        )

    def classify(self, images):
        """Φ(x): uint8 images `[B, H, W, 3]` → logits float32 `[B, K]`."""
        return self._call(export.CLASSIFY, images=_uint8_images(images))["logits"]

    def generate(self, logits, noise=None, seed=export.DEFAULT_SEED):
        """G(logits, noise): logits float32 `[B, K]` → images uint8 `[B, R, R, 3]`.

        Args:
            logits: float32 `[B, K]`, e.g. the `logits` of `reconstruct`, edited.
            noise: float32 `[B, Z]`; if None, drawn from `seed` as `reconstruct` draws it, so
                `generate(reconstruct(x, seed=s)["logits"], seed=s)` reproduces the
                reconstruction.
            seed: an int or one per row `[B]`; used only when `noise` is None.
        """
        logits = tf.convert_to_tensor(logits, tf.float32)
        if noise is None:
            batch = logits.shape[0] if logits.shape.rank else None
            seeds = tf.broadcast_to(_seeds(seed, batch), tf.shape(logits)[:1])
            noise = noise_lib.noise_from_seeds(seeds, self.noise_dim)
        noise = tf.convert_to_tensor(noise, tf.float32)
        return self._call(export.GENERATE, logits=logits, noise=noise)["images"]

    def _call(self, signature, **inputs):
        outputs = self.signatures[signature](**inputs)
        return {key: value.numpy() for key, value in outputs.items()}


def _uint8_images(images):
    """`images` as a uint8 tensor, refusing anything the cast would change.

    A float image in [0, 1] cast to uint8 would turn black, and 300 would wrap to 44: only
    uint8, and integers already in [0, 255], are accepted.
    """
    if tf.is_tensor(images) and images.dtype == tf.uint8:
        return images
    array = images.numpy() if tf.is_tensor(images) else np.asarray(images)
    if array.dtype == np.uint8 or array.size == 0:
        return tf.convert_to_tensor(array.astype(np.uint8))
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"`images` must be uint8 pixel values in [0, 255]; these integers span "
                f"[{low}, {high}] and would wrap around. Received: dtype={array.dtype}, "
                f"min={low}, max={high}"
            )
        return tf.convert_to_tensor(array.astype(np.uint8))
    raise ValueError(
        f"`images` must be uint8 RGB images [batch, height, width, 3] in [0, 255], not "
        f"{array.dtype}: convert explicitly, e.g. np.round(np.clip(x, 0, 1) * 255).astype(np.uint8) "
        f"for floats in [0, 1]. Received: dtype={array.dtype}"
    )


def _seeds(seed, batch):
    """`seed` as int64, once it is one int or one int per image (`batch` of them)."""
    array = seed.numpy() if tf.is_tensor(seed) else np.asarray(seed)
    shape_ok = array.ndim == 0 or (array.ndim == 1 and (batch is None or len(array) == batch))
    if array.dtype.kind not in "iu" or not shape_ok:
        raise ValueError(
            f"`seed` must be an int or one int per image ({batch} here). "
            f"Received: seed={array.tolist()!r}"
        )
    return tf.convert_to_tensor(array, tf.int64)
