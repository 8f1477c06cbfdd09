"""The frozen classifier whose logits the inverter reconstructs images from.

`load_classifier(handle)` turns any of these into a `FrozenClassifier` Keras layer that maps
images `[batch, height, width, 3]` in [-1, 1] to logits `[batch, num_classes]`:

- a registry name (`REGISTRY`): the shipped `savedmodels/*` classifiers and the paper's TF Hub
  ImageNet models;
- a tfhub.dev or kaggle.com URL, or a Kaggle model handle (`owner/model/framework/variation[/v]`),
  loaded with `tensorflow_hub.load`;
- a local SavedModel directory (TF Hub format: a callable object; or one with a serving
  signature), whose `metadata.json` gives the input spec;
- a `.keras` file.

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
from keras import ops

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
            images = tf.image.resize(images, (size, size), method="bilinear", antialias=True)
        low, high = self._spec.value_range
        images = low + (images + 1.0) * (0.5 * (high - low))
        if isinstance(self.model, keras.layers.Layer):
            outputs = self.model(images, training=False)
        else:
            outputs = self.model(images)
        if isinstance(outputs, dict):
            outputs = _pick_output(outputs, self._spec.output_key, self._handle)
        return ops.cast(outputs, "float32")

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


def load_classifier(handle, spec=None, name=None):
    """Loads a classifier as a `FrozenClassifier` layer.

    Args:
        handle: a registry name, TF Hub / Kaggle URL, Kaggle handle, SavedModel directory or
            `.keras` file (see the module docstring).
        spec: the `ClassifierSpec`; by default from the registry or the SavedModel's
            `metadata.json`. Required for other URLs and handles.
        name: optional layer name.

    Returns:
        A `FrozenClassifier`, already checked to return `[batch, spec.num_classes]` logits.

    Example:

    ```python
    clf = load_classifier("savedmodels/shapes_cnn")
    clf.spec.num_classes  # 6
    ```
    """
    handle = str(handle)
    location = handle
    if handle in REGISTRY:
        location, registry_spec = REGISTRY[handle]
        spec = spec or registry_spec
        if not _is_remote(location) and not Path(location).exists():
            raise ValueError(
                f"Classifier '{handle}' is registered at {location}, which does not exist yet "
                f"(train it with bin/train_classifier). Received: handle={handle}"
            )

    path = Path(location)
    if location.endswith(".keras") and path.is_file():
        model = _load_keras(path, handle)
        spec = spec or _spec_from_metadata(path.parent, handle)
    elif path.is_dir() and (path / "saved_model.pb").exists():
        spec = spec or _spec_from_metadata(path, handle)
        model = _load_saved_model(str(path), spec, handle, remote=False)
    elif _is_remote(location):
        if spec is None:
            raise ValueError(
                f"A ClassifierSpec is required for remote classifiers not in the registry "
                f"(input_size, value_range, num_classes). Received: handle={handle}, spec=None"
            )
        model = _load_saved_model(_remote_url(location), spec, handle, remote=True)
    else:
        raise ValueError(
            f"Cannot load classifier: expected {_ACCEPTED_FORMS}. Received: handle={handle}"
        )

    classifier = FrozenClassifier(model, spec, handle, name=name)
    _check_output_shape(classifier)
    return classifier


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


def _load_saved_model(location, spec, handle, remote):
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
    signature = spec.signature
    if signature is None and not callable(loaded):
        signature = "serving_default"  # e.g. SavedModels exported from Keras or TF1
    if signature is None:
        return loaded
    if signature not in loaded.signatures:
        raise ValueError(
            f"Classifier has no signature '{signature}' (it has {list(loaded.signatures)}). "
            f"Received: handle={handle}"
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
    metadata_path = Path(directory) / METADATA_FILENAME
    if not metadata_path.exists():
        raise ValueError(
            f"No ClassifierSpec given and no {METADATA_FILENAME} at {metadata_path}. "
            f"Received: handle={handle}, spec=None"
        )
    return ClassifierSpec.from_dict(json.loads(metadata_path.read_text()))


def _pick_output(outputs, output_key, handle):
    if output_key is None:
        if len(outputs) != 1:
            raise ValueError(
                f"Classifier returns a dict with keys {sorted(outputs)}: set spec.output_key. "
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
            f"got {shape} for a batch of 2. Received: handle={classifier.handle}"
        )
