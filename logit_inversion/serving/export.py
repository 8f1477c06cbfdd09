"""Export a trained inverter as a SavedModel that TF Serving can serve.

`export_inverter(inverter, "savedmodels/NAME")` writes `savedmodels/NAME/<version>/`, the layout
TF Serving watches: one numeric folder per version, a new export taking the next number. The
model holds the frozen classifier Φ and the EMA generator G and serves these signatures
(inputs → outputs; B images, R the model's resolution, K logits, Z noise):

- `serving_default`: `images` uint8 `[B, H, W, 3]` → `reconstructions` uint8 `[B, R, R, 3]`,
  `logits` float32 `[B, K]`, `noise` float32 `[B, Z]`; the noise drawn from seed 0.
- `reconstruct`: `images`, `seed` int64 `[]` or `[B]` → as `serving_default`.
- `reconstruct_encoded`: `images_bytes` string `[B]` (JPEG or PNG files) →
  `reconstructions_bytes` string `[B]` (PNG files), `logits`; seed 0.
- `classify`: `images` → `logits`.
- `generate`: `logits` float32 `[B, K]`, `noise` float32 `[B, Z]` → `images` uint8
  `[B, R, R, 3]`.

Images cross the boundary as uint8 RGB in [0, 255], of any height and width; inside the graph
they are prepared as the training pipeline prepares its images (central square crop,
anti-aliased resize to R, map to [-1, 1]). The noise of image i is a pure function of its seed
(`models.noise.noise_from_seeds`, the package's one seed → ε convention), so a request repeated
with the same images and seeds returns the same reconstructions, in whatever batch it is sent.
TF Serving cannot make an input optional, hence two endpoints: `serving_default` (images only,
seed 0) and `reconstruct` (seed required).

Malformed inputs fail inside the graph with `INVALID_ARGUMENT` and a message saying what was
expected: TF Serving does not check shapes against the signature, so the graph must. That
includes NaN or Inf in `generate`'s logits or noise (which would otherwise come out as black
images). An empty batch (B = 0) is not an error: every signature returns empty outputs of the
usual trailing shapes (e.g. `reconstructions` uint8 `[0, R, R, 3]`).

EXIF orientation: `reconstruct_encoded` applies a JPEG's EXIF orientation tag in the graph
(phone photos arrive upright, as the image-folder loader reads them); the uint8 signatures take
pixels as sent, so clients that decode images themselves must apply the orientation first
(e.g. `PIL.ImageOps.exif_transpose`).
"""

import uuid

import keras
import tensorflow as tf

from logit_inversion import files
from logit_inversion.data import exif, pipeline
# The seed → ε convention this graph computes; shipped exports fix it (see `models.noise`).
from logit_inversion.models.noise import noise_from_seeds

# The serving contract: signature names and their input and output keys.
SERVING_DEFAULT = "serving_default"
RECONSTRUCT = "reconstruct"
RECONSTRUCT_ENCODED = "reconstruct_encoded"
CLASSIFY = "classify"
GENERATE = "generate"
SIGNATURES = (SERVING_DEFAULT, RECONSTRUCT, RECONSTRUCT_ENCODED, CLASSIFY, GENERATE)
# An extra, for analyses rather than serving: float32 images `[B, R, R, 3]` in [-1, 1] →
# `logits`, differentiable (adversarial attacks need gradients of Φ with respect to pixels).
# Not in SIGNATURES, so exports made before it existed still load.
CLASSIFY_FLOAT = "classify_float"
# The seed `serving_default` and `reconstruct_encoded` use, as they take none.
DEFAULT_SEED = 0

# The first bytes of every PNG and every JPEG file (`tf.io.is_jpeg` checks the same three).
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def export_inverter(inverter, output, verbose=False):
    """Writes `inverter` as the next version of the TF Serving model folder `output`.

    The SavedModel is written to a hidden temporary folder beside the versions and renamed into
    place, so a crash never leaves a half-written version for TF Serving to load.

    Args:
        inverter: a built `LogitInverter` (or any object with `classifier`, `ema_generator`,
            `resolution`, `noise_dim` and `num_classes`).
        output: the model folder, e.g. `savedmodels/NAME`; created if missing.
        verbose: print the endpoints as Keras writes them.

    Returns:
        The path of the new version folder, `output/<version>`.

    Example:
        >>> path = export_inverter(restore_inverter("runs/demo"), "savedmodels/demo")
        >>> path
        'savedmodels/demo/1'
    """
    check_output(output)
    archive = serving_archive(inverter)
    tf.io.gfile.makedirs(output)
    # Hidden and non-numeric: TF Serving ignores the folder while it is being written.
    staging = files.join(output, f".tmp-export-{uuid.uuid4().hex}")
    try:
        archive.write_out(staging, verbose=verbose)
        while True:
            path = files.join(output, str(next_version(output)))
            try:
                # On a local disk the rename is atomic and fails if another export filled
                # this number in the meantime; then the next number is taken. On GCS a
                # rename is copy + delete, done with saved_model.pb last (see `files`).
                files.move_folder(staging, path)
                return path
            except (OSError, tf.errors.AlreadyExistsError):
                if not tf.io.gfile.isdir(path):
                    raise
    finally:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)


def check_output(output):
    """Raises ValueError, in one line, unless `output` is or can become a model folder."""
    path = str(output)
    while path and not tf.io.gfile.exists(path):
        parent = path.rstrip("/").rpartition("/")[0]
        if parent == path:
            break
        path = parent
    if path and tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        where = "is a file" if path == str(output) else f"is inside {path}, which is a file"
        raise ValueError(
            f"The export output must be a model folder (created if missing); {output} {where}. "
            f"Received: output={output}"
        )


def next_version(output):
    """The version number a new export into the model folder `output` takes (1 when empty)."""
    if not tf.io.gfile.isdir(output):
        return 1
    versions = [int(name) for name in files.list_names(output) if name.isdigit()]
    return max(versions, default=0) + 1


def serving_archive(inverter):
    """A `keras.export.ExportArchive` with the serving signatures of `inverter`.

    Args:
        inverter: as for `export_inverter`; its classifier and EMA generator must be built.

    Returns:
        The archive, ready for `write_out(path)`.
    """
    for name in ("classifier", "ema_generator"):
        layer = getattr(inverter, name)
        if not layer.built:
            raise ValueError(
                f"The inverter's {name} must be built (called once) before export. "
                f"Received: {name}={layer}"
            )
    functions = ServingFunctions(inverter)
    archive = keras.export.ExportArchive()
    archive.track(inverter.classifier)
    archive.track(inverter.ema_generator)
    images = tf.TensorSpec(None, tf.uint8, name="images")
    seed = tf.TensorSpec(None, tf.int64, name="seed")
    vectors = tf.TensorSpec(None, tf.float32)
    archive.add_endpoint(SERVING_DEFAULT, functions.serving_default, [images])
    archive.add_endpoint(RECONSTRUCT, functions.reconstruct, [images, seed])
    archive.add_endpoint(
        RECONSTRUCT_ENCODED,
        functions.reconstruct_encoded,
        [tf.TensorSpec(None, tf.string, name="images_bytes")],
    )
    archive.add_endpoint(CLASSIFY, functions.classify, [images])
    archive.add_endpoint(GENERATE, functions.generate, [vectors, vectors])
    archive.add_endpoint(
        CLASSIFY_FLOAT,
        functions.classify_float,
        [tf.TensorSpec(None, tf.float32, name="images")],
    )
    return archive


class ServingFunctions:
    """The graph behind each signature, from the inverter's layers.

    Each method takes and returns what its signature does (see the module docstring); the
    argument names are the signature's input keys and the returned dict keys its outputs.

    Args:
        inverter: as for `export_inverter`.
    """

    def __init__(self, inverter):
        self.classifier = inverter.classifier
        self.generator = inverter.ema_generator
        self.resolution = int(inverter.resolution)
        self.noise_dim = int(inverter.noise_dim)
        self.num_classes = int(inverter.num_classes)

    def serving_default(self, images):
        return self.reconstruct(images, tf.constant(DEFAULT_SEED, tf.int64))

    def reconstruct(self, images, seed):
        images = self._model_images(images, "images")
        reconstructions, logits, noise = self._reconstruct(images, seed)
        return {
            "reconstructions": to_uint8(reconstructions),
            "logits": logits,
            "noise": noise,
        }

    def reconstruct_encoded(self, images_bytes):
        images = self._decode(images_bytes)
        reconstructions, logits, _ = self._reconstruct(
            images, tf.constant(DEFAULT_SEED, tf.int64)
        )
        png = tf.map_fn(
            tf.io.encode_png,
            to_uint8(reconstructions),
            fn_output_signature=tf.TensorSpec([], tf.string),
        )
        return {"reconstructions_bytes": png, "logits": logits}

    def classify(self, images):
        return {"logits": self._classify(self._model_images(images, "images"))}

    def classify_float(self, images):
        r = self.resolution
        images = _checked(
            images,
            _has_shape(images, [None, r, r, 3]),
            f"`images` must be float32 model images [batch, {r}, {r}, 3] in [-1, 1]. "
            "Received shape:",
            tf.shape(images),
        )
        return {"logits": self._classify(tf.ensure_shape(images, [None, r, r, 3]))}

    def generate(self, logits, noise):
        logits = _checked(
            logits,
            _has_shape(logits, [None, self.num_classes]),
            f"`logits` must be float32 classifier logits [batch, {self.num_classes}]. "
            "Received shape:",
            tf.shape(logits),
        )
        noise = _checked(
            noise,
            _has_shape(noise, [None, self.noise_dim]),
            f"`noise` must be float32 [batch, {self.noise_dim}]. Received shape:",
            tf.shape(noise),
        )
        noise = _checked(
            noise,
            tf.equal(tf.shape(noise)[0], tf.shape(logits)[0]),
            "`logits` and `noise` must have the same batch size. Received batch sizes:",
            tf.shape(logits)[0],
            tf.shape(noise)[0],
        )
        # NaN or Inf would pass through the generator's batch norm and come out as a black
        # image; refuse them, naming the rows.
        logits = _finite_rows(logits, "logits")
        noise = _finite_rows(noise, "noise")
        logits = tf.ensure_shape(logits, [None, self.num_classes])
        noise = tf.ensure_shape(noise, [None, self.noise_dim])
        return {"images": to_uint8(self._generate(logits, noise))}

    def _reconstruct(self, images, seed):
        """G(Φ(x), z) for model images `x` in [-1, 1]; returns (reconstructions, logits, noise)."""
        logits = self._classify(images)
        noise = noise_from_seeds(self._seeds(seed, tf.shape(images)[0]), self.noise_dim)
        return self._generate(logits, noise), logits, noise

    # With oneDNN (TF's default on recent Intel CPUs) a convolution of an empty batch comes
    # back with its input's channel count, which breaks the next layer; an empty request
    # runs the networks on one zero row instead and returns none of it.
    def _classify(self, images):
        padded, n = _at_least_one_row(images)
        return self.classifier(padded)[:n]

    def _generate(self, logits, noise):
        (logits, n), (noise, _) = _at_least_one_row(logits), _at_least_one_row(noise)
        return self.generator(logits, noise, training=False)[:n]

    def _seeds(self, seed, batch_size):
        """One seed per image: a scalar seed is shared by the whole batch."""
        seed = _checked(
            seed,
            tf.logical_or(
                tf.equal(tf.rank(seed), 0),
                tf.logical_and(
                    tf.equal(tf.rank(seed), 1), tf.equal(tf.size(seed), batch_size)
                ),
            ),
            "`seed` must be an int64 scalar or one int64 per image, [batch]. Received shape, "
            "batch size:", tf.shape(seed), batch_size,
        )
        return tf.broadcast_to(seed, [batch_size])

    def _model_images(self, images, name):
        """uint8 `[B, H, W, 3]` → float32 `[B, R, R, 3]` in [-1, 1], the training images' form."""
        images = _checked(
            images,
            _has_shape(images, [None, None, None, 3]),
            f"`{name}` must be uint8 RGB images [batch, height, width, 3] in [0, 255]. "
            "Received shape:",
            tf.shape(images),
        )
        images = tf.ensure_shape(images, [None, None, None, 3])
        return pipeline.to_model_range(self._crop_and_resize(tf.cast(images, tf.float32)))

    def _decode(self, images_bytes):
        """Encoded JPEG/PNG strings `[B]` → float32 `[B, R, R, 3]` in [-1, 1]."""
        images_bytes = _checked(
            images_bytes,
            _has_shape(images_bytes, [None]),
            "`images_bytes` must be a [batch] vector of encoded JPEG or PNG images. "
            "Received shape:",
            tf.shape(images_bytes),
        )
        known = tf.logical_or(
            tf.equal(tf.strings.substr(images_bytes, 0, len(_PNG_MAGIC)), _PNG_MAGIC),
            tf.equal(tf.strings.substr(images_bytes, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC),
        )
        images_bytes = _checked(
            images_bytes,
            tf.reduce_all(known),
            "`images_bytes` must hold encoded JPEG or PNG images; these indices hold neither:",
            tf.where(tf.logical_not(known))[:, 0],
        )

        def decode(encoded):
            image = exif.decode_upright(encoded)  # JPEGs turned upright, as in image folders
            return pipeline.center_crop_and_resize(image, self.resolution)

        spec = tf.TensorSpec([self.resolution, self.resolution, 3], tf.float32)
        # Images of one request may differ in size, so each is cropped and resized on its own.
        return pipeline.to_model_range(tf.map_fn(decode, images_bytes, fn_output_signature=spec))

    def _crop_and_resize(self, images):
        """The training pipeline's central square crop and resize, for a batch."""
        return pipeline.center_crop_and_resize(images, self.resolution)


def _at_least_one_row(x):
    """(`x`, its batch size), with `x` replaced by one zero row when it has none."""
    n = tf.shape(x)[0]
    row = tf.zeros(tf.concat([[1], tf.shape(x)[1:]], 0), x.dtype)
    return tf.cond(n > 0, lambda: x, lambda: row), n


def to_uint8(images):
    """float32 images in [-1, 1] → uint8 in [0, 255], rounded."""
    return tf.cast(tf.round(tf.clip_by_value((images + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def _has_shape(x, shape):
    """Whether `x` has rank `len(shape)` and the sizes of `shape` that are not None."""
    # [rank, *dims, 0, ...]: the zero padding keeps the indexing in range whatever the rank
    # of `x`, so the assert reports a bad rank rather than a slicing error.
    dims = tf.concat([[tf.rank(x)], tf.shape(x), tf.zeros([len(shape)], tf.int32)], 0)
    conditions = [tf.equal(dims[0], len(shape))]
    conditions += [tf.equal(dims[1 + i], size) for i, size in enumerate(shape) if size is not None]
    return tf.reduce_all(tf.stack(conditions))


def _finite_rows(x, name):
    """`x` `[B, N]`, once every value is finite; else INVALID_ARGUMENT naming the bad rows."""
    finite = tf.reduce_all(tf.math.is_finite(x), axis=-1)
    return _checked(
        x,
        tf.reduce_all(finite),
        f"`{name}` must be finite; these rows hold NaN or Inf:",
        tf.where(tf.logical_not(finite))[:, 0],
    )


def _checked(tensor, condition, *message):
    """`tensor`, once `condition` holds; else INVALID_ARGUMENT with `message` (strings and
    tensors, printed in order)."""
    with tf.control_dependencies([tf.debugging.Assert(condition, list(message), summarize=16)]):
        return tf.identity(tensor)
