"""`load(path)`: an exported inverter as a Python object with numpy in, numpy out.

The object calls the SavedModel's serving signatures (see `logit_inversion.serving.export`), so it
computes exactly what TF Serving would return for the same request.
"""

import os

import tensorflow as tf

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


def resolve_version(path):
    """`path` if it holds a SavedModel, else its newest numeric version folder."""
    path = os.fspath(path)
    if tf.saved_model.contains_saved_model(path):
        return path
    versions = []
    if os.path.isdir(path):
        versions = [int(name) for name in os.listdir(path) if name.isdigit()]
    if not versions:
        raise ValueError(
            "Expected a SavedModel folder or a model folder with numeric version folders. "
            f"Received: path={path}"
        )
    return os.path.join(path, str(max(versions)))


class LoadedInverter:
    """An exported inverter, loaded with `tf.saved_model.load`.

    Images are uint8 RGB `[B, H, W, 3]` in [0, 255] of any size (resized to R inside the
    model); logits are float32 `[B, K]` and noise float32 `[B, Z]`. Methods take numpy arrays
    or tensors and return numpy arrays.

    Args:
        path: a SavedModel folder written by `export.export_inverter`.

    Attributes:
        resolution: R, the side of the generated images.
        noise_dim: Z.
        num_classes: K, the width of the logits.
    """

    def __init__(self, path):
        self.path = path
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
        return self._call(
            export.RECONSTRUCT,
            images=tf.convert_to_tensor(images, tf.uint8),
            seed=tf.convert_to_tensor(seed, tf.int64),
        )

    def classify(self, images):
        """Φ(x): uint8 images `[B, H, W, 3]` → logits float32 `[B, K]`."""
        return self._call(export.CLASSIFY, images=tf.convert_to_tensor(images, tf.uint8))[
            "logits"
        ]

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
            seeds = tf.broadcast_to(tf.convert_to_tensor(seed, tf.int64), tf.shape(logits)[:1])
            noise = export.noise_from_seeds(seeds, self.noise_dim)
        noise = tf.convert_to_tensor(noise, tf.float32)
        return self._call(export.GENERATE, logits=logits, noise=noise)["images"]

    def _call(self, signature, **inputs):
        outputs = self.signatures[signature](**inputs)
        return {key: value.numpy() for key, value in outputs.items()}
