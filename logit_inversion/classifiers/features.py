"""Feature vectors of a frozen classifier: any named layer, not only its logits.

`load_feature_extractor(handle, layer)` returns a `FeatureExtractor` Keras layer mapping images
`[batch, height, width, 3]` in [-1, 1] to float32 features `[batch, output_dim]`. Images are
prepared exactly as `FrozenClassifier` prepares them (resize to the classifier's input size,
rescale to its value range): the extractor *is* a `FrozenClassifier` around a feature function,
so the two can never drift apart.

`layer` chooses the vector:

- `"logits"`: the classifier's logits, as `load_classifier` returns them.
- `"penultimate"`: the input of the final dense layer, globally average-pooled when spatial.
  Works for `.keras` models, SavedModels with a `features` signature (what
  `bin/train_classifier` exports), and the CNNs shipped in `savedmodels/`, which have only a
  logits function: their `build_cnn` network is rebuilt from `metadata.json`, the SavedModel's
  variables are loaded into it, and its logits are checked to equal the SavedModel's.
- `"SIGNATURE:KEY"`: output `KEY` of the SavedModel signature `SIGNATURE` (local or remote).
- `"output"`: the handle's own output is the feature vector (TF Hub feature-vector modules,
  e.g. `https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5`, or a local copy).
- any other string: the Keras layer of that name (a `.keras` model, or a shipped CNN rebuilt as
  above; an unknown name lists the valid ones).

A spatial output `[batch, h, w, c]` is average-pooled to `[batch, c]` (`size=None`), or to
`[batch, size, size, c]` and flattened to `[batch, size * size * c]`.

Example:

```python
features = load_feature_extractor("shapes", layer="penultimate")
features.output_dim                                              # 128
vectors = features(keras.random.uniform((8, 32, 32, 3), -1, 1))  # [8, 128]
```
"""

import dataclasses
import json
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from logit_inversion.classifiers import frozen

LOGITS = "logits"
PENULTIMATE = "penultimate"
OUTPUT = "output"
FEATURES_SIGNATURE = "features"  # the signature (and output key) bin/train_classifier exports


@keras.saving.register_keras_serializable(package="logit_inversion")
class FeatureExtractor(keras.layers.Layer):
    """A frozen classifier's feature vector as a Keras layer: images in [-1, 1] → features.

    Use `load_feature_extractor` rather than the constructor. Never trainable; float32;
    gradients flow to the input images.

    Args:
        classifier: a `FrozenClassifier` whose "logits" are the features (its spec's
            `num_classes` is the feature width).
        handle, layer, size, input_spec: what `load_feature_extractor` was called with; kept
            for `get_config`.

    Call args:
        images: float `[batch, height, width, 3]` in [-1, 1], any height and width.

    Returns:
        float32 features `[batch, output_dim]`.
    """

    def __init__(self, classifier, handle, layer, size=None, input_spec=None, **kwargs):
        kwargs["dtype"] = "float32"
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.classifier = classifier
        self._handle = handle
        self._layer = layer
        self._size = size
        self._requested_spec = input_spec
        self.built = True

    @property
    def output_dim(self):
        """Width F of the feature vectors."""
        return self.classifier.num_classes

    @property
    def spec(self):
        """The classifier's input spec, with `num_classes` = `output_dim`."""
        return self.classifier.spec

    @property
    def handle(self):
        return self._handle

    @property
    def layer(self):
        return self._layer

    def call(self, images):
        return self.classifier(images)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({
            "handle": self._handle, "layer": self._layer, "size": self._size,
            "spec": _spec_dict(self._requested_spec),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        spec = config.pop("spec")
        return load_feature_extractor(
            config.pop("handle"), config.pop("layer"),
            spec,  # a mapping of spec fields: overrides, as the config's classifier_spec
            config.pop("size"), name=config.get("name"))


def _spec_dict(spec):
    if spec is None:
        return None
    return spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)


def load_feature_extractor(handle, layer=PENULTIMATE, spec=None, size=None, name=None,
                           classifier=None):
    """Loads the feature vector `layer` of a classifier as a `FeatureExtractor` layer.

    Args:
        handle: anything `load_classifier` accepts (registry name, SavedModel directory,
            `.keras` file, TF Hub / Kaggle URL or handle).
        layer: `"logits"`, `"penultimate"`, `"SIGNATURE:KEY"`, `"output"` or a Keras layer
            name (see the module docstring).
        spec: a `ClassifierSpec`, or a mapping of some of its fields (as `load_classifier`
            takes); by default the registry's or `metadata.json`'s. Only the input size and
            value range matter unless `layer="logits"`.
        size: `None` to average-pool a spatial output `[batch, h, w, c]` to `[batch, c]`;
            an integer s to average-pool it to s×s and flatten to `[batch, s * s * c]`
            (h and w must be multiples of s).
        name: optional layer name.
        classifier: the `FrozenClassifier` already loaded from `handle` (with `spec`), whose
            model is reused instead of loading the file again (a training run loads Φ once).

    Returns:
        A `FeatureExtractor`; `.output_dim` is the feature width F, and calling it on images
        `[batch, h, w, 3]` in [-1, 1] returns float32 `[batch, F]`.
    """
    handle = str(handle)
    if not isinstance(layer, str) or not layer:
        raise ValueError(f"`layer` must be a non-empty string. Received: layer={layer!r}")
    if size is not None and (isinstance(size, bool) or int(size) != size or size < 1):
        raise ValueError(f"`size` must be None or a positive integer. Received: size={size}")
    if classifier is not None and str(classifier.handle) != handle:
        raise ValueError(f"`classifier` must be loaded from `handle`. Received: "
                         f"handle={handle}, classifier.handle={classifier.handle}")
    if layer == LOGITS:
        if classifier is None:
            classifier = frozen.load_classifier(handle, spec, name=name and f"{name}_logits")
        return FeatureExtractor(classifier, handle, layer, size, spec, name=name)

    input_spec = _input_spec(handle, spec)
    location = frozen.REGISTRY[handle][0] if handle in frozen.REGISTRY else handle
    path = Path(location)
    loaded = _loaded_model(classifier)
    if location.endswith(".keras") and path.is_file():
        keras_model = loaded if loaded is not None else _load_keras(path, handle)
        model = _keras_features(keras_model, layer, size, handle)
    elif path.is_dir() and (path / "saved_model.pb").exists():
        model = _saved_model_features(path, layer, size, handle, loaded)
    elif frozen._is_remote(location):
        if loaded is None:
            loaded = _load(frozen._remote_url(location), handle, remote=True)
        model = _callable_features(loaded, layer, size, handle)
    else:
        raise ValueError(
            f"Cannot load features: expected {frozen._ACCEPTED_FORMS}. Received: handle={handle}")

    width = _output_width(model, input_spec, handle, layer)
    feature_spec = dataclasses.replace(
        input_spec, num_classes=width, class_names=None, has_background=False,
        # The feature function already picked its output; the wrapper must not pick again.
        output_key=None, signature=None)
    classifier = frozen.FrozenClassifier(model, feature_spec, handle,
                                         name=name and f"{name}_classifier")
    return FeatureExtractor(classifier, handle, layer, size, spec, name=name)


def _loaded_model(classifier):
    """The object `load_classifier` loaded for `classifier` (the SavedModel behind a signature
    caller, or the Keras model), or None without a classifier."""
    if classifier is None:
        return None
    return getattr(classifier.model, "loaded", classifier.model)


def _input_spec(handle, spec):
    """The classifier's spec; only its input size and value range matter for features."""
    try:
        return frozen.resolve_spec(handle, spec)
    except ValueError as error:
        # A feature-vector module has no logits whose width could be inferred, and needs none.
        if "num_classes" not in str(error) or isinstance(spec, frozen.ClassifierSpec):
            raise
        return frozen.resolve_spec(handle, {**(_spec_dict(spec) or {}), "num_classes": 1})


_REBUILT = {}  # (directory, variables mtime) -> network: each rebuild loads and checks a model


def rebuild_shipped_cnn(directory, loaded=None):
    """The `build_cnn` network of a shipped classifier SavedModel, with its trained weights.

    The shipped SavedModels hold only a logits function; rebuilding the Keras network from
    `metadata.json` (input_size, num_classes, width) and reading the SavedModel's variables
    into it gives access to every layer. The rebuilt logits are checked against the
    SavedModel's on a fixed random batch.

    Args:
        directory: a SavedModel written by `classifiers.training.export_hub_savedmodel`.
        loaded: the SavedModel, if already loaded.

    Returns:
        A frozen `keras.Model` from images `[batch, s, s, 3]` in [0, 1] to logits; one per
        directory and process (cached).
    """
    directory = Path(directory).resolve()
    index = directory / "variables" / "variables.index"
    key = (str(directory), index.stat().st_mtime_ns if index.exists() else None)
    if key not in _REBUILT:
        _REBUILT[key] = _rebuild(directory, loaded)
    return _REBUILT[key]


def _rebuild(directory, loaded):
    from logit_inversion.classifiers.training import build_cnn  # pulls in TFDS; only here

    metadata = json.loads((directory / frozen.METADATA_FILENAME).read_text())
    missing = [k for k in ("input_size", "num_classes", "width") if k not in metadata]
    if missing:
        raise ValueError(
            f"{directory / frozen.METADATA_FILENAME} lacks {missing}: not a classifier made by "
            f"bin/train_classifier, so its layers cannot be rebuilt. Received: directory={directory}")
    size = int(metadata["input_size"])
    network = build_cnn(size, int(metadata["num_classes"]), int(metadata["width"]))
    # The SavedModel's object graph stores the network under the attribute `network`.
    status = tf.train.Checkpoint(network=network).read(str(directory / "variables" / "variables"))
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise ValueError(
            f"The variables of {directory} do not fit build_cnn(width={metadata['width']}) "
            f"({str(error).splitlines()[0]}). Received: directory={directory}") from None
    images = np.random.default_rng(0).uniform(0.0, 1.0, (4, size, size, 3)).astype("float32")
    loaded = loaded or tf.saved_model.load(str(directory))
    expected = loaded(tf.constant(images)).numpy()
    got = keras.ops.convert_to_numpy(network(images, training=False))
    error = float(np.max(np.abs(expected - got)))
    if error > 1e-4 * max(1.0, float(np.max(np.abs(expected)))):
        raise ValueError(
            f"The rebuilt network's logits differ from the SavedModel's by {error:.3g}. "
            f"Received: directory={directory}")
    network.trainable = False
    return network


def canonical_layer_names(model):
    """`{name: layer}` with the names Keras gives a freshly built model's layers.

    Keras numbers auto-named layers per process (`dense`, `dense_1`, ...), so a network rebuilt
    after another has different names; these are counted within the model, hence stable.
    """
    names, counts = {}, {}
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        if base == "input_layer":
            continue
        count = counts.get(base, 0)
        counts[base] = count + 1
        names[base if count == 0 else f"{base}_{count}"] = layer
    return names


def check_poolable(shape, size):
    """Raises a one-line ValueError unless `pool_features(x of shape, size)` is defined."""
    shape = tuple(shape)
    if size is None or len(shape) == 2:
        return
    if len(shape) != 4:
        raise ValueError(
            f"`size` pools a spatial output [batch, h, w, c]; this output has shape {shape}. "
            f"Received: size={size}")
    height, width = shape[1], shape[2]
    if height is None or width is None or height % size or width % size:
        raise ValueError(
            f"`size` must divide the output's height and width ({height}×{width}). "
            f"Received: size={size}")


def _snake_case(name):
    # Keras's rule for default layer names: ReLU → re_lu, Conv2D → conv2d.
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def pool_features(features, size=None):
    """Average-pools features to vectors.

    Args:
        features: `[batch, c]` (returned as is), `[batch, n, c]` (tokens; averaged over n when
            `size` is None) or `[batch, h, w, c]`.
        size: None, or s: pool `[batch, h, w, c]` to `[batch, s, s, c]` and flatten.

    Returns:
        `[batch, F]`: F = c when `size` is None, else s * s * c.
    """
    check_poolable(features.shape, size)
    rank = len(features.shape)
    if rank == 2:
        return features
    if size is None:
        return keras.ops.mean(features, axis=tuple(range(1, rank - 1)))
    height, width = features.shape[1], features.shape[2]
    pooled = keras.ops.average_pool(features, (height // size, width // size),
                                    (height // size, width // size), padding="valid")
    return keras.ops.reshape(pooled, (-1, size * size * features.shape[3]))


def _keras_features(model, layer, size, handle):
    """A `keras.Model` from the classifier's input to the chosen layer's pooled output."""
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"Layer features need a functional or Sequential Keras model (its graph of layers); "
            f"this one is subclassed. Received: handle={handle}, layer={layer}")
    names = canonical_layer_names(model)
    if layer == PENULTIMATE:
        dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
        if not dense:
            raise ValueError(
                f"'penultimate' is the input of the final Dense layer; this model has none. "
                f"Name a layer instead ({', '.join(names)}). Received: handle={handle}")
        output = dense[-1].input
    else:
        chosen = names.get(layer) or _by_name(model, layer)
        if chosen is None:
            raise ValueError(
                f"Unknown layer '{layer}'; expected 'logits', 'penultimate' or one of "
                f"{', '.join(names)}. Received: layer={layer}")
        output = chosen.output
    check_poolable(output.shape, size)
    model.trainable = False
    return keras.Model(model.inputs, _PoolLayer(size)(output), name="features")


def _by_name(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _saved_model_features(path, layer, size, handle, loaded=None):
    if loaded is None:
        loaded = _load(str(path), handle, remote=False)
    if layer == PENULTIMATE and FEATURES_SIGNATURE in loaded.signatures:
        return _callable_features(loaded, f"{FEATURES_SIGNATURE}:{FEATURES_SIGNATURE}", size,
                                  handle)
    if layer == OUTPUT or ":" in layer:
        return _callable_features(loaded, layer, size, handle)
    metadata = path / frozen.METADATA_FILENAME
    if metadata.exists() and "width" in json.loads(metadata.read_text()):
        return _keras_features(rebuild_shipped_cnn(path, loaded), layer, size, handle)
    raise ValueError(
        f"SavedModel {path} has no '{FEATURES_SIGNATURE}' signature and was not made by "
        f"bin/train_classifier; name a signature output as layer='SIGNATURE:KEY' "
        f"(signatures: {list(loaded.signatures)}). Received: layer={layer}")


def _load(location, handle, remote):
    try:
        if remote:
            import tensorflow_hub as hub  # only needed (and only works online) for remote models

            return hub.load(location)
        return tf.saved_model.load(location)
    except Exception as error:  # TF and TF Hub raise many types; one clear line is better.
        raise ValueError(
            f"Cannot load model ({type(error).__name__}: {str(error).splitlines()[0]}). "
            f"Received: handle={handle}") from error


def _load_keras(path, handle):
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types; see above.
        raise ValueError(
            f"Cannot load .keras model ({type(error).__name__}: {error}). "
            f"Received: handle={handle}") from error


def _callable_features(loaded, layer, size, handle):
    """Features from a loaded object's call (`"output"`) or a signature output (`"SIG:KEY"`)."""
    if layer == OUTPUT:
        if not callable(loaded):
            raise ValueError(
                f"layer='output' needs a callable model (TF Hub format); this one has only "
                f"signatures {list(loaded.signatures)}: use layer='SIGNATURE:KEY'. "
                f"Received: handle={handle}")
        return _Pooled(loaded, None, size, handle)
    if ":" not in layer:
        raise ValueError(
            f"For this model `layer` must be 'logits', 'output' or 'SIGNATURE:KEY'. "
            f"Received: layer={layer}")
    signature, key = layer.split(":", 1)
    if signature not in loaded.signatures:
        raise ValueError(
            f"No signature '{signature}' (signatures: {list(loaded.signatures)}). "
            f"Received: layer={layer}")
    return _Pooled(frozen._SignatureCaller(loaded, signature), key, size, handle)


class _Pooled(tf.Module):
    """Calls a loaded function, picks output `key` from a dict, pools a spatial output."""

    def __init__(self, model, key, size, handle):
        super().__init__()
        self.model = model  # tracked: exports carry its variables
        self.key = key
        self.size = size
        self.handle = handle

    def __call__(self, images):
        outputs = self.model(images)
        if isinstance(outputs, dict):
            if self.key not in outputs:
                raise ValueError(
                    f"No output '{self.key}' (outputs: {sorted(outputs)}). "
                    f"Received: handle={self.handle}, key={self.key}")
            outputs = outputs[self.key]
        return pool_features(tf.cast(outputs, tf.float32), self.size)


class _PoolLayer(keras.layers.Layer):
    def __init__(self, size=None, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, features):
        return pool_features(features, self.size)

    def compute_output_shape(self, input_shape):
        if len(input_shape) == 2:
            return input_shape
        if self.size is None:
            return (input_shape[0], input_shape[-1])
        return (input_shape[0], self.size * self.size * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def _output_width(model, spec, handle, layer):
    images = tf.zeros((2, spec.input_size, spec.input_size, 3), tf.float32)
    try:
        if isinstance(model, keras.Model):
            outputs = model(images, training=False)
        else:
            outputs = model(images)
    except ValueError:
        raise
    except Exception as error:  # the model rejects the input; say which layer and why
        raise ValueError(
            f"Feature layer '{layer}' failed on a zero batch of shape {tuple(images.shape)} "
            f"({type(error).__name__}: {str(error).splitlines()[0]}). Received: handle={handle}"
        ) from error
    shape = tuple(outputs.shape)
    if len(shape) != 2 or shape[0] != 2:
        raise ValueError(
            f"Feature layer '{layer}' must give vectors [batch, F]; got {shape}. "
            f"Received: handle={handle}")
    return int(shape[1])


@keras.saving.register_keras_serializable(package="logit_inversion")
class ConditioningClassifier(keras.layers.Layer):
    """A classifier whose call returns a chosen feature vector, and whose logits stay reachable.

    The inverter conditions G and D on whatever its classifier's call returns, and sizes their
    projections by `num_classes`; this layer makes that the feature vector (width F), while
    `logits(images)` still gives the classifier's logits, on which agreement is measured.

    Args:
        classifier: the `FrozenClassifier` (logits `[batch, K]`).
        features: a `FeatureExtractor` of the same classifier (vectors `[batch, F]`).

    Call args:
        images: float `[batch, h, w, 3]` in [-1, 1].

    Returns:
        float32 `[batch, F]`.
    """

    def __init__(self, classifier, features, **kwargs):
        kwargs["dtype"] = "float32"
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.classifier = classifier
        self.features = features
        self.built = True

    @property
    def num_classes(self):
        """Width F of the conditioning vector (what G's and D's projections take)."""
        return self.features.output_dim

    @property
    def spec(self):
        """The input spec with `num_classes` = F and no class names: what the inverter's
        vectors are (code that names the vector's entries finds none)."""
        return self.features.spec

    @property
    def logits_spec(self):
        """The logits classifier's spec (class names of `logits`)."""
        return self.classifier.spec

    @property
    def handle(self):
        return self.classifier.handle

    @property
    def layer(self):
        return self.features.layer

    def call(self, images):
        return self.features(images)

    def logits(self, images):
        """The classifier's logits `[batch, K]` of images `[batch, h, w, 3]` in [-1, 1]."""
        return self.classifier(images)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)


def load_conditioning(handle, layer=LOGITS, spec=None, size=None, name=None, classifier=None):
    """The classifier layer an inverter conditions on: `load_classifier` for `layer="logits"`
    (or None), else a `ConditioningClassifier` over the chosen `layer` (see
    `load_feature_extractor`). `classifier`: the `FrozenClassifier` already loaded from
    `handle`, used instead of loading it again."""
    if classifier is None:
        classifier = frozen.load_classifier(handle, spec, name=name)
    if layer in (None, LOGITS):
        return classifier
    features = load_feature_extractor(handle, layer, spec, size, classifier=classifier)
    return ConditioningClassifier(classifier, features, name=name and f"{name}_conditioning")
