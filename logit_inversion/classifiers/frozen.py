"""The frozen classifier whose logits the inverter reconstructs images from.

`load_classifier(handle)` turns any of these into a `FrozenClassifier` Keras layer that maps
images `[batch, height, width, 3]` in [-1, 1] to logits `[batch, num_classes]`:

- a registry name (`REGISTRY`): the shipped `savedmodels/*` classifiers and the paper's TF Hub
  ImageNet models;
- a tfhub.dev or kaggle.com URL, or a Kaggle model handle (`owner/model/framework/variation[/v]`),
  loaded with `tensorflow_hub.load`;
- a local SavedModel directory (TF Hub format: a callable object; or one with a serving
  signature);
- a `.keras` file.

What the classifier expects (`ClassifierSpec`) comes from the registry, a `metadata.json` beside
the model, or the config's `classifier_spec` keys, which override both; the input size and the
number of logits are read from the model's signature when they are static.

The layer adapts the inverter's images to what the classifier expects (size, pixel range) so the
rest of the model never needs to know which classifier it inverts.

Example:

```python
clf = load_classifier("shapes")
logits = clf(keras.random.uniform((8, 32, 32, 3), -1.0, 1.0))  # [8, 6]
```
"""

import dataclasses
import json
import re
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging
from keras import ops

from logit_inversion.classifiers.inline import InlinedGraph

SAVEDMODELS_DIR = Path(__file__).resolve().parents[2] / "savedmodels"
METADATA_FILENAME = "metadata.json"

SHAPES_CLASS_NAMES = ("circle", "square", "triangle", "plus", "ring", "star")
CIFAR10_CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
    """What a classifier expects and returns.

    Args:
        input_size: height == width of the images the classifier expects.
        value_range: `(low, high)` pixel range the classifier expects, e.g. `(0.0, 1.0)`.
        num_classes: width of the logits, background class included.
        class_names: optional names of the logits, in order.
        has_background: logit 0 is a background class (TF-Slim ImageNet models: 1001 logits).
        output_key: key to pick when the model returns a dict.
        signature: signature to call when the loaded object is not directly callable, e.g.
            `"serving_default"`.
    """

    input_size: int
    value_range: tuple[float, float]
    num_classes: int
    class_names: tuple[str, ...] | None = None
    has_background: bool = False
    output_key: str | None = None
    signature: str | None = None

    def __post_init__(self):
        if self.input_size < 1 or self.num_classes < 1:
            raise ValueError(
                "`input_size` and `num_classes` must be positive. "
                f"Received: input_size={self.input_size}, num_classes={self.num_classes}"
            )
        low, high = self.value_range
        if not low < high:
            raise ValueError(f"`value_range` must be (low, high). Received: {self.value_range}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"Expected {self.num_classes} class names. Received: class_names={self.class_names}"
            )
        # Normalise lists (e.g. from JSON) to tuples so specs stay hashable and comparable.
        object.__setattr__(self, "value_range", (float(low), float(high)))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(self.class_names))

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config):
        """Builds a spec from a dict such as a `metadata.json`, ignoring unrelated keys."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in config.items() if key in names})


def _imagenet_spec(input_size):
    # TF-Slim ImageNet classifiers on TF Hub: pixels in [0, 1], 1001 logits (0 = background).
    return ClassifierSpec(
        input_size=input_size, value_range=(0.0, 1.0), num_classes=1001, has_background=True
    )


_SHAPES_SPEC = ClassifierSpec(32, (0.0, 1.0), 6, SHAPES_CLASS_NAMES)
_CIFAR10_SPEC = ClassifierSpec(32, (0.0, 1.0), 10, CIFAR10_CLASS_NAMES)

# Known classifiers: name -> (handle, spec).
REGISTRY = {
    "shapes": (str(SAVEDMODELS_DIR / "shapes_cnn"), _SHAPES_SPEC),
    "shapes_robust": (str(SAVEDMODELS_DIR / "shapes_robust"), _SHAPES_SPEC),
    # Shape x position quadrant, 24 classes: its logits carry the position (a positive control
    # for the factor audits); spec from its metadata.json.
    "shapes_quadrant": (str(SAVEDMODELS_DIR / "shapes_quadrant"), None),
    "cifar10_standard": (str(SAVEDMODELS_DIR / "cifar10_standard"), _CIFAR10_SPEC),
    "cifar10_robust": (str(SAVEDMODELS_DIR / "cifar10_robust"), _CIFAR10_SPEC),
    "resnet50_v2": (
        "https://tfhub.dev/google/imagenet/resnet_v2_50/classification/5",
        _imagenet_spec(224),
    ),
    "resnet152_v2": (
        "https://tfhub.dev/google/imagenet/resnet_v2_152/classification/5",
        _imagenet_spec(224),
    ),
    "inception_v3": (
        "https://tfhub.dev/google/imagenet/inception_v3/classification/5",
        _imagenet_spec(299),
    ),
}

_ACCEPTED_FORMS = (
    f"a registry name ({', '.join(REGISTRY)}), a tfhub.dev or kaggle.com URL, "
    "a Kaggle handle (owner/model/framework/variation[/version]), "
    "a SavedModel directory, or a .keras file"
)
_KAGGLE_HANDLE = re.compile(r"^[\w.-]+/[\w.-]+/[\w.-]+/[\w.-]+(/\d+)?$")


@keras.saving.register_keras_serializable(package="logit_inversion")
class FrozenClassifier(keras.layers.Layer):
    """A loaded classifier as a frozen Keras layer: images in [-1, 1] to float32 logits.

    Resizes images (bilinear, antialiased) to `spec.input_size` and rescales them to
    `spec.value_range` before calling the model. Always computes in float32, whatever the
    global dtype policy, and is never trainable: its weights are not in `trainable_weights`,
    yet gradients flow to the input images (the inverter's reconstruction loss needs them).

    Use `load_classifier` rather than the constructor.

    Args:
        model: the loaded classifier: a callable (TF Hub object, `keras.Model`, or a concrete
            signature function) taking one float32 image batch.
        spec: the `ClassifierSpec` of `model`.
        handle: where `model` was loaded from; kept for `get_config`.

    Call args:
        images: float `[batch, height, width, 3]` in [-1, 1], any height and width.

    Returns:
        float32 logits `[batch, spec.num_classes]`.
    """

    def __init__(self, model, spec, handle, **kwargs):
        # The classifier is a fixed function of the inverter's output: float32 keeps its logits
        # identical under mixed precision, and it must never be updated.
        kwargs["dtype"] = "float32"
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self._spec = spec
        self._handle = handle
        if isinstance(model, keras.layers.Layer):
            model.trainable = False
        # Assigned as an attribute so SavedModel / ExportArchive export the loaded variables.
        self.model = model
        self._inlined = None
        self.built = True

    @property
    def spec(self):
        return self._spec

    @property
    def handle(self):
        return self._handle

    @property
    def num_classes(self):
        return self._spec.num_classes

    def call(self, images):
        images = ops.cast(images, "float32")
        size = self._spec.input_size
        if tuple(images.shape[1:3]) != (size, size):
            images = resize_images(images, size)
        low, high = self._spec.value_range
        images = low + (images + 1.0) * (0.5 * (high - low))
        if isinstance(self.model, keras.layers.Layer):
            return ops.cast(self.model(images, training=False), "float32")
        if tf.executing_eagerly():
            return self._restored_logits(images)
        # In a traced function (training, export, XLA) the restored graph is inlined: see
        # `classifiers/inline.py` for why a restored call recompiles an XLA step.
        return self._inlined_graph()(images)

    def _restored_logits(self, images):
        outputs = self.model(images)
        if isinstance(outputs, dict):
            outputs = _pick_output(outputs, self._spec.output_key, self._handle)
        return ops.cast(outputs, "float32")

    def _inlined_graph(self):
        if self._inlined is None:
            with tf.init_scope():  # traced once, outside whatever function is being traced
                try:
                    variables = [v for v in tf.train.TrackableView(self.model).descendants()
                                 if isinstance(v, tf.Variable)]
                    self._inlined = InlinedGraph(self._restored_logits, self._spec.input_size,
                                                 variables)
                except Exception as error:  # any graph the inliner cannot flatten still runs
                    logging.warning(
                        "Classifier %s is called as a restored function (%s: %s): a "
                        "jit-compiled step that differentiates it recompiles at every call.",
                        self._handle, type(error).__name__, str(error).splitlines()[0])
                    self._inlined = self._restored_logits
        return self._inlined

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._spec.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"handle": self._handle, "spec": self._spec.to_dict()})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        handle = config.pop("handle")
        spec = ClassifierSpec.from_dict(config.pop("spec"))
        return load_classifier(handle, spec, name=config.get("name"))


def resize_images(images, size):
    """Antialiased bilinear resize, `[batch, h, w, c]` → `[batch, size, size, c]`, that XLA
    compiles.

    `tf.image.resize(..., antialias=True)` lowers to `ScaleAndTranslate`, which has no XLA
    kernel, so a TPU step would fail to compile or go to the host every step. A separable
    resize is two matrix products with constant `[size, h]` and `[size, w]` weight matrices
    built at trace time; with the weights of `_resize_weights` it computes exactly what
    `tf.image.resize(..., "bilinear", antialias=True)` computes, shrinking (antialiased)
    and enlarging (plain bilinear) alike. Matmuls compile everywhere and run on the TPU's
    matrix units; their cost (~2·size·h·w·c per image) is small next to any classifier's.
    Average pooling would only cover integer shrink factors (128 → 224 is neither).
    Images whose height or width is unknown at trace time fall back to the TF op.
    """
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        return tf.image.resize(images, (size, size), method="bilinear", antialias=True)
    rows = tf.constant(_resize_weights(height, size), images.dtype)
    cols = tf.constant(_resize_weights(width, size), images.dtype)
    images = tf.einsum("oh,bhwc->bowc", rows, images)
    return tf.einsum("pw,bowc->bopc", cols, images)


def _resize_weights(in_size, out_size):
    """`[out_size][in_size]` weights of one axis of TF's antialiased bilinear resize: a
    triangle filter centred on each output pixel (half-pixel centres), widened by
    in_size / out_size when shrinking so that every input pixel contributes, and
    renormalised where it overhangs the border (as `ScaleAndTranslate` does)."""
    scale = out_size / in_size
    radius = max(1.0 / scale, 1.0)  # in input pixels
    weights = []
    for out in range(out_size):
        centre = (out + 0.5) / scale
        row = [max(0.0, 1.0 - abs(i + 0.5 - centre) / radius) for i in range(in_size)]
        total = sum(row)
        weights.append([w / total for w in row])
    return weights


def load_classifier(handle, spec=None, name=None):
    """Loads a classifier as a `FrozenClassifier` layer.

    The spec (input size, pixel range, number of logits, ...) comes from, in order of
    precedence: `spec`; the registry or the classifier's `metadata.json`; and, for the input
    size, the number of logits and a one-key output dict, the model's own signature when its
    shapes are static. The pixel range is never guessed.

    Args:
        handle: a registry name, TF Hub / Kaggle URL, Kaggle handle, SavedModel directory or
            `.keras` file (see the module docstring).
        spec: a complete `ClassifierSpec`, used as is; or a mapping of some of its fields
            (the config's `classifier_spec`: None values are ignored, and `class_names_file`
            names a text file with one class name per line) that override the registry's or
            `metadata.json`'s values.
        name: optional layer name.

    Returns:
        A `FrozenClassifier`, already checked to return `[batch, spec.num_classes]` logits.

    Raises:
        ValueError: in one line, naming the `classifier_spec` key to set when a field can be
            neither found nor inferred.

    Example:

    ```python
    clf = load_classifier("savedmodels/shapes_cnn")
    clf.spec.num_classes  # 6
    clf = load_classifier("/models/my_cnn", {"value_range": (0, 255)})  # size, logits inferred
    ```
    """
    handle = str(handle)
    spec, model = _resolve(handle, spec, need_model=True)
    classifier = FrozenClassifier(model, spec, handle, name=name)
    _check_output_shape(classifier)
    return classifier


def resolve_spec(handle, spec=None):
    """The `ClassifierSpec` `load_classifier(handle, spec)` would use, without building the layer.

    Loads the model only when a field must be inferred from its signature, so a config can be
    checked before anything is written. Raises the same one-line errors as `load_classifier`.
    """
    return _resolve(str(handle), spec, need_model=False)[0]


def _resolve(handle, spec, need_model):
    """`(ClassifierSpec, loaded model or None)` for `handle`; see `load_classifier`."""
    location, registry_spec = handle, None
    if handle in REGISTRY:
        location, registry_spec = REGISTRY[handle]
        if not _is_remote(location) and not Path(location).exists():
            raise ValueError(
                f"Classifier '{handle}' is registered at {location}, which does not exist yet "
                f"(train it with bin/train_classifier). Received: handle={handle}"
            )
    path = Path(location)
    if location.endswith(".keras") and path.is_file():
        kind, folder = "keras", path.parent
    elif path.is_dir() and (path / "saved_model.pb").exists():
        kind, folder = "saved_model", path
    elif _is_remote(location):
        kind, folder = "remote", None
    else:
        raise ValueError(
            f"Cannot load classifier: expected {_ACCEPTED_FORMS}. Received: handle={handle}"
        )

    if isinstance(spec, ClassifierSpec):
        fields = spec.to_dict()
    else:
        base = registry_spec.to_dict() if registry_spec else {}
        if not base and folder is not None:
            base = _spec_from_metadata(folder, handle)
        fields = {**base, **_overrides(spec, handle)}
    if fields.get("value_range") is None:
        # Checked before loading: a remote model is not downloaded only to fail here.
        raise ValueError(
            f"Classifier '{handle}' needs classifier_spec.value_range, the pixel range it expects "
            f"(it is not in the registry, has no {METADATA_FILENAME}, and a range cannot be "
            "inferred); pass e.g. --config.classifier_spec.value_range=0,1 (TF Hub image models) "
            f"or =0,255. Received: handle={handle}, classifier_spec.value_range=None"
        )
    missing = [key for key in ("input_size", "num_classes") if fields.get(key) is None]
    model = None
    if need_model or missing:
        if kind == "keras":
            model = _load_keras(path, handle)
        else:
            url = _remote_url(location) if kind == "remote" else str(path)
            model = _load_saved_model(url, fields.get("signature"), handle, kind == "remote")
        fields = _infer_from_signature(model, fields, missing, handle)
    return ClassifierSpec.from_dict(fields), model


def _overrides(spec, handle):
    """The set fields of a partial spec (a mapping such as the config's `classifier_spec`)."""
    if spec is None:
        return {}
    items = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
    fields = {key: value for key, value in items.items() if value is not None}
    names_file = fields.pop("class_names_file", None)
    unknown = sorted(set(fields) - {field.name for field in dataclasses.fields(ClassifierSpec)})
    if unknown:
        raise ValueError(
            f"Unknown classifier_spec keys {unknown}; expected input_size, value_range, "
            "num_classes, has_background, signature, output_key, class_names_file. "
            f"Received: handle={handle}"
        )
    if names_file is not None:
        fields["class_names"] = read_class_names(names_file)
    return fields


def read_class_names(path):
    """Class names from a text file, one per line (blank lines ignored)."""
    try:
        with tf.io.gfile.GFile(path) as file:
            names = [line.strip() for line in file.read().splitlines() if line.strip()]
    except (tf.errors.OpError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"Cannot read classifier_spec.class_names_file ({reason}). "
            f"Received: classifier_spec.class_names_file={path}"
        ) from None
    if not names:
        raise ValueError(
            "classifier_spec.class_names_file must list one class name per line; it is empty. "
            f"Received: classifier_spec.class_names_file={path}"
        )
    return tuple(names)


def _infer_from_signature(model, fields, missing, handle):
    """`fields` with `missing` (input_size, num_classes) read from the model's static shapes."""
    fields = dict(fields)
    input_shape, outputs = _signature_shapes(model)
    if isinstance(outputs, dict):
        key = fields.get("output_key")
        if key is None and len(outputs) > 1:
            raise ValueError(
                f"Classifier '{handle}' returns a dict with keys {sorted(outputs)}; set "
                f"classifier_spec.output_key to the logits. Received: handle={handle}, "
                "classifier_spec.output_key=None"
            )
        if key is not None and key not in outputs:
            raise ValueError(
                f"Classifier '{handle}' has no output '{key}' (keys: {sorted(outputs)}); set "
                f"classifier_spec.output_key to one of them. Received: handle={handle}, "
                f"classifier_spec.output_key={key}"
            )
        outputs = outputs[key if key is not None else next(iter(outputs))]
    shapes = {
        "input_size": (input_shape, "the input", _square_size),
        "num_classes": (getattr(outputs, "shape", None), "the output", _logits_width),
    }
    for key in missing:
        shape, what, read = shapes[key]
        value = read(shape)
        if value is None:
            raise ValueError(
                f"Cannot infer classifier_spec.{key} of classifier '{handle}': {what} shape in "
                f"its signature is {_describe(shape)}; pass --config.classifier_spec.{key}. "
                f"Received: handle={handle}, classifier_spec.{key}=None"
            )
        fields[key] = value
    return fields


def _signature_shapes(model):
    """`(input shape or None, output TensorSpec / dict of them / None)` of a loaded model."""
    try:
        if isinstance(model, _SignatureCaller):
            function = model.function
            return (
                function.structured_input_signature[1][model.input_name].shape,
                function.structured_outputs,
            )
        if isinstance(model, keras.Model):
            return tf.TensorShape(model.inputs[0].shape), tf.TensorSpec(model.outputs[0].shape)
        functions = [
            f for f in getattr(model.__call__, "concrete_functions", ())
            if len(f.structured_input_signature[0]) >= 1
        ]
        # Hub modules may trace __call__ several times (e.g. training=True/False): the shapes
        # are only known when every trace agrees.
        shapes = {tuple(f.structured_input_signature[0][0].shape.as_list()) for f in functions}
        if len(shapes) != 1:
            return None, None
        return tf.TensorShape(list(shapes.pop())), functions[0].structured_outputs
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None, None


def _square_size(shape):
    dims = _dims(shape)
    if dims is None or len(dims) != 4 or dims[1] is None or dims[1] != dims[2]:
        return None
    return int(dims[1])


def _logits_width(shape):
    dims = _dims(shape)
    if dims is None or len(dims) != 2 or dims[1] is None:
        return None
    return int(dims[1])


def _dims(shape):
    if shape is None:
        return None
    shape = tf.TensorShape(shape)
    return None if shape.rank is None else shape.as_list()


def _describe(shape):
    dims = _dims(shape)
    return "unknown" if dims is None else str(dims).replace("None", "?")


def _is_remote(location):
    return location.startswith(("http://", "https://")) or (
        not Path(location).exists() and _KAGGLE_HANDLE.match(location) is not None
    )


def _remote_url(location):
    if location.startswith(("http://", "https://")):
        return location
    return f"https://www.kaggle.com/models/{location}"


def _load_keras(path, handle):
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types; one clear message is more useful.
        raise ValueError(
            f"Cannot load .keras classifier ({type(error).__name__}: {error}). "
            f"Received: handle={handle}"
        ) from error


def _load_saved_model(location, signature, handle, remote):
    try:
        if remote:
            import tensorflow_hub as hub  # only needed (and only works online) for remote models

            loaded = hub.load(location)
        else:
            loaded = tf.saved_model.load(location)
    except Exception as error:  # TF and TF Hub raise many types; see above.
        raise ValueError(
            f"Cannot load classifier ({type(error).__name__}: {str(error).splitlines()[0]}); "
            f"expected {_ACCEPTED_FORMS}. Received: handle={handle}"
        ) from error
    if signature is None and not callable(loaded):
        signature = "serving_default"  # e.g. SavedModels exported from Keras or TF1
    if signature is None:
        return loaded
    if signature not in loaded.signatures:
        raise ValueError(
            f"Classifier has no signature '{signature}' (it has {list(loaded.signatures)}); "
            f"set classifier_spec.signature to one of them. Received: handle={handle}, "
            f"classifier_spec.signature={signature}"
        )
    return _SignatureCaller(loaded, signature)


class _SignatureCaller(tf.Module):
    """Calls a serving signature (which takes keyword arguments) with one image tensor."""

    def __init__(self, loaded, signature):
        super().__init__()
        self.loaded = loaded  # tracks the variables the signature reads
        self.function = loaded.signatures[signature]
        kwargs_spec = self.function.structured_input_signature[1]
        if len(kwargs_spec) != 1:
            raise ValueError(
                f"Signature '{signature}' must take one image input. "
                f"Received: inputs={list(kwargs_spec)}"
            )
        (self.input_name,) = kwargs_spec

    def __call__(self, images):
        return self.function(**{self.input_name: images})


def _spec_from_metadata(directory, handle):
    """The spec fields in `directory/metadata.json`, or {} when there is none."""
    metadata_path = Path(directory) / METADATA_FILENAME
    if not metadata_path.exists():
        return {}
    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Cannot read {metadata_path} ({type(error).__name__}: {error}). "
            f"Received: handle={handle}"
        ) from None
    names = {field.name for field in dataclasses.fields(ClassifierSpec)}
    return {key: value for key, value in metadata.items() if key in names and value is not None}


def _pick_output(outputs, output_key, handle):
    if output_key is None:
        if len(outputs) != 1:
            raise ValueError(
                f"Classifier returns a dict with keys {sorted(outputs)}: set classifier_spec.output_key. "
                f"Received: handle={handle}"
            )
        (output_key,) = outputs
    if output_key not in outputs:
        raise ValueError(
            f"Classifier outputs have no key '{output_key}' (keys: {sorted(outputs)}). "
            f"Received: handle={handle}"
        )
    return outputs[output_key]


def _check_output_shape(classifier):
    size = classifier.spec.input_size
    try:
        # Inside a strategy scope the restored functions only run in replica context.
        strategy = tf.distribute.get_strategy()
        logits = strategy.run(classifier, args=(ops.zeros((2, size, size, 3), "float32"),))
        shape = tuple(strategy.experimental_local_results(logits)[0].shape)
    except ValueError:
        raise
    except Exception as error:  # e.g. the model rejects the input shape
        raise ValueError(
            f"Classifier failed on a zero batch of shape (2, {size}, {size}, 3) "
            f"({type(error).__name__}: {str(error).splitlines()[0]}). "
            f"Received: handle={classifier.handle}"
        ) from error
    if shape != (2, classifier.num_classes):
        raise ValueError(
            f"Classifier must return logits of shape (batch, {classifier.num_classes}); "
            f"got {shape} for a batch of 2 (set classifier_spec.num_classes to match). "
            f"Received: handle={classifier.handle}"
        )
