"""A small CNN that reads the `shapes` nuisance factors back from an image.

The `factors` experiment asks which nuisances (colours, position, scale, rotation) survive in
a classifier's logits: it applies this regressor, trained on real `shapes` images, to the
originals (the ceiling), to their reconstructions, and compares both with a constant
prediction (chance).

Targets, 13 numbers per image, each in about [-1, 1]:
- the hues are circular: `cos 2πh, sin 2πh` for the shape hue and for the background hue;
- position x, y and scale, mapped linearly from their ranges to [-1, 1];
- rotation is only defined up to the shape's symmetry (k = 3 for a triangle, 4 for a square
  or a plus, 5 for a star; none for a circle or a ring), so three heads predict
  `cos kθ, sin kθ` for k = 3, 4, 5 and only the head of the image's class is trained or read.

Errors are in the factors' own units: hues in degrees of the hue circle (0–180), positions
and scale in pixels of a 32×32 image, rotation in degrees up to the symmetry (0–180/k; circles
and rings excluded).

Example:

```python
regressor = load_regressor("shapes_factors")
predicted = predict_factors(regressor, images, labels)   # dict of [batch] arrays
errors = factor_errors(predicted, true_factors, labels)   # dict of mean errors
```
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from logit_inversion.data import shapes

SAVEDMODELS_DIR = Path(__file__).resolve().parents[2] / "savedmodels"
REGISTRY = {"shapes_factors": SAVEDMODELS_DIR / "shapes_factors"}
MODEL_FILENAME = "model.keras"
METADATA_FILENAME = "metadata.json"

FACTOR_NAMES = shapes.FACTOR_NAMES
# Units of each factor's error, for tables and figures.
FACTOR_UNITS = {
    "shape_hue": "deg",
    "background_hue": "deg",
    "position_x": "px",
    "position_y": "px",
    "scale": "px",
    "rotation": "deg",
}
# Rotational symmetry order of each class; 0 = rotation cannot be seen (circle, ring).
SYMMETRY = {"circle": 0, "square": 4, "triangle": 3, "plus": 4, "ring": 0, "star": 5}
ROTATION_ORDERS = (3, 4, 5)
NUM_OUTPUTS = 4 + 3 + 2 * len(ROTATION_ORDERS)
_LINEAR = {
    "position_x": shapes.POSITION_RANGE,
    "position_y": shapes.POSITION_RANGE,
    "scale": shapes.SCALE_RANGE,
}


def symmetry_orders(labels):
    """Rotational symmetry order `[batch]` (0 where rotation is invisible) of `shapes` labels."""
    table = np.array([SYMMETRY[name] for name in shapes.CLASS_NAMES])
    return table[np.asarray(labels, np.int64)]


def encode_targets(factors, labels):
    """Factors (dict of `[batch]`) and labels `[batch]` → targets `[batch, 13]`, mask `[batch, 13]`.

    The mask is 1 where a target is defined: everywhere but the rotation heads that do not
    belong to the image's class.
    """
    labels = np.asarray(labels, np.int64)
    n = labels.shape[0]
    columns = []
    for name in ("shape_hue", "background_hue"):
        angle = 2 * np.pi * np.asarray(factors[name], np.float64)
        columns += [np.cos(angle), np.sin(angle)]
    for name, (low, high) in _LINEAR.items():
        columns.append((np.asarray(factors[name], np.float64) - low) / (high - low) * 2 - 1)
    orders = symmetry_orders(labels)
    rotation = np.asarray(factors["rotation"], np.float64)
    mask = [np.ones(n)] * 7
    for k in ROTATION_ORDERS:
        columns += [np.cos(k * rotation), np.sin(k * rotation)]
        mask += [(orders == k).astype(np.float64)] * 2
    return (np.stack(columns, 1).astype(np.float32), np.stack(mask, 1).astype(np.float32))


def decode_predictions(outputs, labels):
    """Regressor outputs `[batch, 13]` → dict of factor estimates `[batch]` (rotation NaN for
    circles and rings; hues in [0, 1); rotation in [0, 2π/k))."""
    outputs = np.asarray(outputs, np.float64)
    orders = symmetry_orders(labels)
    factors = {
        "shape_hue": np.mod(np.arctan2(outputs[:, 1], outputs[:, 0]) / (2 * np.pi), 1.0),
        "background_hue": np.mod(np.arctan2(outputs[:, 3], outputs[:, 2]) / (2 * np.pi), 1.0),
    }
    for i, (name, (low, high)) in enumerate(_LINEAR.items()):
        factors[name] = low + (outputs[:, 4 + i] + 1) / 2 * (high - low)
    rotation = np.full(outputs.shape[0], np.nan)
    for j, k in enumerate(ROTATION_ORDERS):
        rows = orders == k
        angle = np.arctan2(outputs[rows, 8 + 2 * j], outputs[rows, 7 + 2 * j])
        rotation[rows] = np.mod(angle, 2 * np.pi) / k
    factors["rotation"] = rotation
    return factors


def factor_errors(predicted, true, labels):
    """Mean absolute error of each factor, in the units of `FACTOR_UNITS`.

    Args:
        predicted, true: dicts from factor name to `[batch]` arrays (as `decode_predictions`).
        labels: `[batch]` class labels (rotation is scored up to each class's symmetry).

    Returns:
        Dict from factor name to a float (NaN for rotation when every image is a circle or a
        ring).
    """
    errors = {}
    for name in ("shape_hue", "background_hue"):
        diff = np.abs(np.asarray(predicted[name]) - np.asarray(true[name])) % 1.0
        errors[name] = float(np.mean(np.minimum(diff, 1.0 - diff)) * 360.0)
    for name in _LINEAR:
        errors[name] = float(np.mean(np.abs(np.asarray(predicted[name]) - np.asarray(true[name]))))
    orders = symmetry_orders(labels)
    rows = orders > 0
    if not rows.any():
        errors["rotation"] = float("nan")
        return errors
    k = orders[rows]
    # Compare k·θ on the circle, then divide by k: the error up to the shape's symmetry.
    diff = np.mod(k * (np.asarray(predicted["rotation"])[rows] - np.asarray(true["rotation"])[rows]),
                  2 * np.pi)
    errors["rotation"] = float(np.degrees(np.mean(np.minimum(diff, 2 * np.pi - diff) / k)))
    return errors


def constant_prediction(train_factors, n):
    """Chance: the same prediction for every image (the training mean of the linear factors,
    the circular mean of the hues; rotation 0), as a dict of `[n]` arrays."""
    prediction = {}
    for name in ("shape_hue", "background_hue"):
        angle = 2 * np.pi * np.asarray(train_factors[name])
        mean = np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) / (2 * np.pi)
        prediction[name] = np.full(n, np.mod(mean, 1.0))
    for name in _LINEAR:
        prediction[name] = np.full(n, float(np.mean(train_factors[name])))
    prediction["rotation"] = np.zeros(n)
    return prediction


def build_regressor(width=32, dense=128, name="shapes_factors"):
    """Images `[batch, 32, 32, 3]` in [-1, 1] → 13 factor targets (see the module docstring).

    Strided convolutions, then a dense layer on the flattened 4×4 map: global pooling would
    throw away the position the regressor must report. With `width=32`: ~0.4 M parameters.
    """
    if width < 1 or dense < 1:
        raise ValueError(f"`width` and `dense` must be positive. Received: width={width}, dense={dense}")
    size = shapes.IMAGE_SIZE
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    for multiplier in (1, 2, 4):
        x = keras.layers.Conv2D(width * multiplier, 3, strides=2, padding="same",
                                activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense, activation="relu")(x)
    outputs = keras.layers.Dense(NUM_OUTPUTS)(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="logit_inversion")
def masked_mse(y_true, y_pred):
    """Mean squared error over the defined targets: `y_true` is `[batch, 2·13]`, the targets
    then their mask."""
    targets, mask = y_true[:, :NUM_OUTPUTS], y_true[:, NUM_OUTPUTS:]
    return tf.reduce_sum(mask * tf.square(y_pred - targets), -1) / tf.reduce_sum(mask, -1)


def load_split(split, data_dir=None, max_examples=None):
    """`shapes` images uint8 `[n, 32, 32, 3]`, labels `[n]` and factors (dict of `[n]`)."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    builder = tfds.builder("shapes", data_dir=data_dir)
    if not builder.is_prepared():
        builder.download_and_prepare()
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if max_examples is not None:
        ds = ds.take(max_examples)
    batches = list(tfds.as_numpy(ds.batch(1024)))
    if not batches:
        raise ValueError(f"Split {split!r} of 'shapes' is empty. Received: split={split}")
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches]).astype(np.int64)
    factors = {name: np.concatenate([b[name] for b in batches]) for name in FACTOR_NAMES}
    return images, labels, factors


def predict_factors(regressor, images, labels, batch_size=256):
    """The regressor's factor estimates for float images `[batch, R, R, 3]` in [-1, 1] (resized
    to 32 px when R differs): dict of `[batch]` arrays."""
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape[1] != shapes.IMAGE_SIZE:
        images = tf.image.resize(images, (shapes.IMAGE_SIZE,) * 2, antialias=True)
    outputs = regressor.predict(images, batch_size=batch_size, verbose=0)
    return decode_predictions(outputs, labels)


def train_regressor(output, data_dir=None, epochs=6, batch_size=128, width=32, dense=128,
                    learning_rate=2e-3, noise_std=0.1, train_examples=None, seed=0,
                    overwrite=False, command=None, verbose=2):
    """Trains the factor regressor on the `shapes` train split and writes it to `output`.

    `output/model.keras` holds the network and `output/metadata.json` the recipe (`command`),
    the target encoding and the test-split errors next to chance. The folder appears
    atomically (written to a hidden sibling, then renamed).

    Args:
        output: folder to create; an existing one is replaced only with `overwrite=True`.
        data_dir: TFDS data directory holding (or to receive) the `shapes` dataset.
        epochs, batch_size, learning_rate: Adam training schedule (cosine decay).
        width, dense: network size (see `build_regressor`).
        noise_std: maximum std of the Gaussian pixel noise added to training images (in
            [-1, 1] units), so the regressor does not depend on crisp synthetic pixels.
        train_examples: use only the first n training images (tests).
        seed: seed of the weights, the shuffling and the noise.
        command: the command line, recorded in the metadata.

    Returns:
        The metadata dict.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise ValueError(f"Output exists; pass overwrite=True to replace it. Received: output={output}")
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"`{key}` must be positive. Received: {key}={value}")
    keras.utils.set_random_seed(seed)
    start = time.time()
    images, labels, factors = load_split("train", data_dir, train_examples)
    targets, mask = encode_targets(factors, labels)
    model = build_regressor(width, dense)
    steps = epochs * int(np.ceil(len(images) / batch_size))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss=masked_mse,
    )

    def prepare(image, target):
        image = tf.cast(image, tf.float32) / 127.5 - 1.0
        std = tf.random.uniform([tf.shape(image)[0], 1, 1, 1], 0.0, noise_std)
        return image + std * tf.random.normal(tf.shape(image)), target

    train = (tf.data.Dataset.from_tensor_slices((images, np.concatenate([targets, mask], 1)))
             .shuffle(len(images), seed=seed).batch(batch_size).map(prepare)
             .prefetch(tf.data.AUTOTUNE))
    model.fit(train, epochs=epochs, verbose=verbose)
    seconds = time.time() - start

    test_images, test_labels, test_factors = load_split("test", data_dir)
    predicted = predict_factors(model, test_images / 127.5 - 1.0, test_labels)
    chance = constant_prediction(factors, len(test_labels))
    metadata = {
        "dataset": "shapes",
        "factors": list(FACTOR_NAMES),
        "units": FACTOR_UNITS,
        "targets": "cos/sin 2πh for each hue; x, y, scale mapped to [-1, 1]; cos/sin kθ for "
                   "k = 3, 4, 5 (triangle; square, plus; star), circles and rings unscored",
        "constant_prediction": {name: float(value[0]) for name, value in chance.items()},
        "test_error": factor_errors(predicted, test_factors, test_labels),
        "chance_error": factor_errors(chance, test_factors, test_labels),
        "test_examples": int(len(test_labels)),
        "train_examples": int(len(labels)),
        "epochs": epochs, "batch_size": batch_size, "width": width, "dense": dense,
        "learning_rate": learning_rate, "noise_std": noise_std, "seed": seed,
        "parameters": int(model.count_params()),
        "training_seconds": round(seconds, 1),
        "command": command,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        # An uncompiled copy: the shipped file holds the weights, not Adam's moments (1/3 the size).
        shipped = keras.models.clone_model(model)
        shipped.set_weights(model.get_weights())
        shipped.save(staging / MODEL_FILENAME)
        (staging / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
        staging.chmod(0o755)
        if output.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{output.name}.old.", dir=output.parent))
            os.rename(output, backup / output.name)
            os.rename(staging, output)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metadata


def load_regressor(handle="shapes_factors"):
    """The factor regressor: a registry name (`shapes_factors`) or a folder written by
    `train_regressor`. Returns `(keras.Model, metadata dict)`."""
    path = REGISTRY.get(str(handle), Path(handle))
    model_file = Path(path) / MODEL_FILENAME
    if not model_file.is_file():
        raise ValueError(
            f"No factor regressor at {path} (expected {MODEL_FILENAME}; make it with "
            f"bin/train_factor_regressor --output={path}). Received: handle={handle}"
        )
    metadata_file = Path(path) / METADATA_FILENAME
    metadata = json.loads(metadata_file.read_text()) if metadata_file.is_file() else {}
    model = keras.saving.load_model(model_file, compile=False)
    return model, metadata
