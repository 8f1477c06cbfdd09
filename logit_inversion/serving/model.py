"""One handle on a trained inverter, whether a `bin/train` workdir or an export.

`open_model(path)` takes a `bin/train` workdir (restored with `training.restore_inverter`) or
an exported SavedModel (a model folder or a version folder, see `serving.export`) and returns
an `InverterModel`: classify float images, generate images from logits and noise, gradients
of Φ with respect to the pixels, the class names, ε from a seed. The analyses
(`bin/analyze`), the evaluation (`bin/evaluate`), the reconstructions of a split
(`bin/reconstruct`) and the explorer (`bin/explore`) all open their models here.

Both kinds return what the export serves: generated images are rounded to uint8 and mapped
back to [-1, 1], so a workdir and its export give the same numbers. A workdir whose newest
checkpoint misses any variable of the EMA generator is refused, naming them (the one
checkpoint-coverage policy, `training.checkpoints.check_covers_generator`).

Example:

```python
model = open_model("runs/demo_base")               # or "runs/demo_base_export"
logits = model.classify(images)                     # [B, K]; images [B, R, R, 3] in [-1, 1]
reconstructions = model.generate(logits, model.noise(len(images), seed=0))
```
"""

import os

import numpy as np
import tensorflow as tf

from logit_inversion import files
from logit_inversion.models import noise as noise_lib
from logit_inversion.serving import export

# Batches sent through Φ and G at once: bounds memory on large image counts.
BATCH_SIZE = 256


class NotAModel(ValueError):
    """The path is neither a `bin/train` workdir nor an exported inverter; one line."""


class InverterModel:
    """A trained inverter, from a workdir or an export, numpy in and numpy out.

    Args:
        name: a short label for figures and tables.
        path: where it was loaded from.
        kind: `"workdir"` or `"export"`.
        classify_fn: differentiable callable, float32 tensor `[B, R, R, 3]` in [-1, 1] →
            logits `[B, K]`; None when the model cannot give gradients.
        logits_fn: callable as `classify_fn`, gradients not needed (always available).
        generate_fn: callable, logits `[B, K]`, noise `[B, Z]` → uint8 tensor `[B, R, R, 3]`.
        resolution, num_classes, noise_dim: R, K, Z.
        class_names: K strings.
        dataset, data_dir: the data the inverter was trained on, when known (workdirs).
        classifier: the handle of Φ the inverter was trained on, when recorded (a workdir's
            config, an export's metadata.json); the export itself holds Φ either way.
        deterministic: G was trained with ε held at zero (`configs/dosovitskiy_brox.py`);
            known for workdirs only (an export does not record it).
        inverter: the restored `LogitInverter` of a workdir (None for an export), e.g. to
            export it.

    Attributes:
        as the arguments.
    """

    def __init__(self, name, path, kind, classify_fn, logits_fn, generate_fn, resolution,
                 num_classes, noise_dim, class_names, dataset=None, data_dir=None,
                 class_logits_fn=None, classifier=None, deterministic=False,
                 inverter=None):
        self.name = name
        self.path = path
        self.kind = kind
        self.classify_fn = classify_fn
        self._logits_fn = logits_fn
        self._generate_fn = generate_fn
        self.resolution = int(resolution)
        self.num_classes = int(num_classes)
        self.noise_dim = int(noise_dim)
        self.class_names = tuple(class_names)
        self.dataset = dataset
        self.data_dir = data_dir
        self.classifier = classifier
        self.deterministic = bool(deterministic)
        self.inverter = inverter
        # Set when G is conditioned on another layer than the logits: agreement is then
        # measured on the classifier's logits, not on the arg-max of the conditioning vector.
        self._class_logits_fn = class_logits_fn

    @property
    def differentiable(self):
        """Whether `classify_fn` exists (gradients of Φ with respect to pixels)."""
        return self.classify_fn is not None

    def classify(self, images):
        """Φ(x): float images `[B, R, R, 3]` in [-1, 1] → numpy logits `[B, K]`."""
        images = np.asarray(images, np.float32)
        self._check_images(images)
        return _batched(lambda x: self._logits_fn(tf.constant(x)), images)

    def class_logits(self, images, vectors):
        """The classifier's logits of `images` `[B, R, R, 3]`, given their conditioning
        vectors from `classify`: the vectors themselves for a logits inverter, recomputed
        for an inverter of another layer. Agreement is measured on these."""
        if self._class_logits_fn is None:
            return np.asarray(vectors)
        return _batched(lambda x: self._class_logits_fn(tf.constant(x)),
                        np.asarray(images, np.float32))

    def generate(self, logits, noise):
        """G(logits, noise) → numpy float32 images `[B, R, R, 3]` in [-1, 1], on the uint8 grid."""
        logits = np.asarray(logits, np.float32)
        noise = np.asarray(noise, np.float32)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"Expected logits [batch, {self.num_classes}]. "
                             f"Received: logits.shape={logits.shape}")
        if noise.shape != (logits.shape[0], self.noise_dim):
            raise ValueError(f"Expected noise [{logits.shape[0]}, {self.noise_dim}]. "
                             f"Received: noise.shape={noise.shape}")
        images = _batched(lambda z, e: self._generate_fn(tf.constant(z), tf.constant(e)),
                          logits, noise)
        return images.astype(np.float32) / 127.5 - 1.0

    def noise(self, n, seed):
        """ε `[n, Z]` (numpy float32) of `n` images drawn from `seed`: row i is
        `models.noise.noise_from_seeds([seed + i])`, what the export's `reconstruct` draws for
        seed + i, bit for bit."""
        return np.asarray(noise_lib.noise(n, self.noise_dim, seed))

    def top1_names(self, logits):
        """`(names, probabilities)` of the top-1 class of each row of `logits` `[B, K]`."""
        probabilities = softmax(logits)
        top = probabilities.argmax(-1)
        return [self.class_names[i] for i in top], probabilities[np.arange(len(top)), top]

    def describe(self):
        """A JSON-ready summary: name, path, kind, the classifier it inverts and sizes."""
        return {"name": self.name, "path": self.path, "kind": self.kind,
                "classifier": self.classifier, "deterministic": self.deterministic,
                "resolution": self.resolution, "num_classes": self.num_classes,
                "noise_dim": self.noise_dim, "class_names": list(self.class_names)}

    def _check_images(self, images):
        r = self.resolution
        if images.ndim != 4 or images.shape[1:] != (r, r, 3):
            raise ValueError(f"Expected float images [batch, {r}, {r}, 3] in [-1, 1]. "
                             f"Received: images.shape={images.shape}")


def softmax(logits):
    """Row-wise softmax of numpy logits `[B, K]`, computed stably."""
    logits = np.asarray(logits, np.float64)
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def open_model(path, name=None, class_names=None):
    """Opens a `bin/train` workdir or an exported SavedModel as an `InverterModel`.

    Args:
        path: a workdir (holds `config.json` and checkpoints), a SavedModel version folder or
            a model folder of numeric versions (the newest is used).
        name: label for figures; default the folder's name.
        class_names: K names; default the classifier's (workdir), else the dataset's label
            names when their number is K, else `class0`, `class1`, ...

    Returns:
        An `InverterModel`.

    Raises:
        NotAModel: one line, for a path that is neither.
        ValueError: one line, for a workdir whose newest checkpoint misses variables of the
            EMA generator (named), or that has no checkpoint.
    """
    from logit_inversion.training import checkpoints  # pylint: disable=import-outside-toplevel

    path = os.fspath(path)
    if not tf.io.gfile.isdir(path):
        raise NotAModel(f"Expected a bin/train workdir or an exported SavedModel folder. "
                        f"Received: path={path} (not a folder)")
    label = name or os.path.basename(os.path.normpath(path))
    if tf.io.gfile.exists(files.join(path, checkpoints.CONFIG_FILENAME)):
        return _open_workdir(path, label, class_names)
    return _open_export(path, label, class_names)


def _open_workdir(path, name, class_names):
    from logit_inversion import training  # pylint: disable=import-outside-toplevel
    from logit_inversion.training import checkpoints  # pylint: disable=import-outside-toplevel

    config = checkpoints.load_config(path)
    inverter = training.restore_inverter(path)   # refuses a partial checkpoint
    classifier = inverter.classifier
    names = class_names or classifier.spec.class_names or _default_names(inverter.num_classes)

    # autograph=False: plain graph tracing of Keras layers; autograph would try to convert
    # Keras internals and fails on them.
    @tf.function(reduce_retracing=True, autograph=False)
    def generate(logits, noise):
        return export.to_uint8(inverter.ema_generator(logits, noise, training=False))

    logits_fn = tf.function(classifier.__call__, reduce_retracing=True, autograph=False)
    class_logits_fn = None
    if hasattr(classifier, "logits"):   # conditioned on another layer
        class_logits_fn = tf.function(classifier.logits, reduce_retracing=True,
                                      autograph=False)
    return InverterModel(name, path, "workdir", classifier.__call__, logits_fn, generate,
                         inverter.resolution, inverter.num_classes, inverter.noise_dim, names,
                         dataset=config.dataset, data_dir=config.data_dir,
                         class_logits_fn=class_logits_fn, classifier=config.classifier,
                         deterministic=getattr(inverter, "deterministic", False),
                         inverter=inverter)


def _open_export(path, name, class_names):
    from logit_inversion.serving import loading  # pylint: disable=import-outside-toplevel

    try:
        loaded = loading.load(path)
    except ValueError as error:
        raise NotAModel(f"Expected a bin/train workdir (with config.json) or an exported "
                        f"SavedModel. Received: path={path} ({error})") from None
    model = loaded.saved_model

    def generate(logits, noise):
        return model.generate(logits, noise)["images"]

    if hasattr(model, export.CLASSIFY_FLOAT):
        def classify(images):
            return model.classify_float(images)["logits"]
        logits_fn = classify
    else:
        # An export made before `classify_float` existed: uint8 in, no gradients.
        classify = None

        def logits_fn(images):
            return model.classify(export.to_uint8(images))["logits"]

    names = class_names or _default_names(loaded.num_classes)
    # A shipped export names its training data and classifier in metadata.json (not its
    # data_dir, which belonged to the machine that trained it).
    metadata = loading.model_metadata(path)
    return InverterModel(name, loaded.path, "export", classify, logits_fn, generate,
                         loaded.resolution, loaded.num_classes, loaded.noise_dim, names,
                         dataset=metadata.get("dataset"), classifier=metadata.get("classifier"))


def _default_names(num_classes):
    return tuple(f"class{i}" for i in range(num_classes))


def _batched(fn, *arrays):
    """`fn` over slices of `BATCH_SIZE` rows of `arrays`, concatenated as numpy."""
    n = arrays[0].shape[0]
    if n == 0:
        raise ValueError(f"Expected at least one row. Received: batch size {n}")
    outputs = [np.asarray(fn(*(a[i:i + BATCH_SIZE] for a in arrays)))
               for i in range(0, n, BATCH_SIZE)]
    return np.concatenate(outputs)
