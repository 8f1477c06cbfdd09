"""Pre-flight check: does the wrapped classifier classify the data before anything is trained?

The most common silent failure in inversion is a classifier fed the wrong input convention (value
range, mean/std normalisation, channel order, a background logit, probabilities taken for
logits): the inverter then trains happily on garbage logits. `check_classifier` runs the
wrapped classifier on one labelled held-out batch and measures:

- top-1 accuracy against chance (the larger of 1/classes and the batch's majority class);
- whether the outputs look like probabilities (in [0, 1], rows summing to 1);
- the accuracy under each common convention, on the same batch: value ranges [0, 1], [-1, 1],
  [0, 255], ImageNet mean/std, each in RGB and BGR channel order;
- for a classifier with one logit more than the dataset has classes (1001 vs 1000), whether
  index 0 behaves as a background class (labels then map to logit index + 1).

Near-chance accuracy, a clearly better convention or probability outputs raise a one-line
`PreflightError` naming what was measured and which setting to change, unless `accept_risk`.

Example:

```python
report = check_classifier("shapes", "shapes", "test", data_dir="~/tensorflow_datasets")
report["accuracy"], report["chance"]  # (1.0, 0.19...)
```
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from logit_inversion.classifiers import frozen
from logit_inversion.data import shapes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# name -> (offset, scale) with pixel fractions u in [0, 1] mapped to (u - offset) / scale.
RANGES = {
    "[0, 1]": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "[-1, 1]": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "[0, 255]": ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)),
    "imagenet_mean_std": (IMAGENET_MEAN, IMAGENET_STD),
}
# What to set for each range (mean/std has no exact value_range: say what comes closest).
_RANGE_FLAGS = {
    "[0, 1]": "classifier_spec.value_range=0,1",
    "[-1, 1]": "classifier_spec.value_range=-1,1",
    "[0, 255]": "classifier_spec.value_range=0,255",
    "imagenet_mean_std": (
        "classifier_spec.value_range=-2.1,2.5 (the closest single range; exact ImageNet mean/std "
        "needs the normalisation inside the model)"),
}
ORDERS = ("RGB", "BGR")
# "Near chance": accuracy below chance + NEAR_CHANCE * (1 - chance).
NEAR_CHANCE = 0.1
# "Clearly better": at least MIN_GAIN more accuracy on the same images, and a paired (McNemar)
# z-score of at least MIN_Z, so that sampling noise on a few hundred images does not trigger it.
MIN_GAIN = 0.05
MIN_Z = 3.0
ACCEPT_FLAG = "preflight.accept_risk=True"


class PreflightError(ValueError):
    """The classifier fails the pre-flight check; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Convention:
    """An input convention: a value range (a `RANGES` key) and a channel order."""

    value_range: str
    order: str = "RGB"

    @property
    def name(self):
        return self.value_range if self.order == "RGB" else f"{self.value_range} {self.order}"


def preflight(classifier, images, labels, num_data_classes=None):
    """Measures how the wrapped classifier does on one labelled batch; raises nothing.

    Args:
        classifier: a `FrozenClassifier` (images in [-1, 1] → logits `[batch, K]`).
        images: float `[batch, h, w, 3]` in [-1, 1], held-out images.
        labels: int `[batch]`; -1 where unknown.
        num_data_classes: classes of the dataset (default: 1 + the largest label).

    Returns:
        A JSON-able report: `accuracy`, `chance`, `conventions` (accuracy per convention),
        `outputs_look_like_probabilities`, `background` (1001-vs-1000 logits), `problems`
        (one-line messages, empty when all is well) and the numbers behind them.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    labels = np.asarray(labels).astype(np.int64)
    logits = _numpy(classifier(images))
    num_classes = int(classifier.num_classes)
    report = {
        "examples": int(len(labels)),
        "num_classes": num_classes,
        "value_range": list(classifier.spec.value_range),
        **_output_stats(logits),
    }
    problems = []
    if report["outputs_look_like_probabilities"]:
        problems.append(
            "its outputs look like probabilities (each row lies in [0, 1] and sums to 1; "
            f"min {report['output_min']:.3g}, max {report['output_max']:.3g}), not logits: set "
            "classifier_spec.output_key (or .signature) to the logits output")

    known = labels >= 0
    num_data_classes = num_data_classes or (int(labels.max()) + 1 if known.any() else None)
    offset = _label_offset(classifier, num_classes, num_data_classes)
    report.update(num_data_classes=num_data_classes, label_offset=offset)
    if not known.any() or offset is None:
        report["accuracy"] = None
        report["skipped"] = (
            "no labels" if not known.any() else
            f"the dataset's {num_data_classes} labels do not index the classifier's "
            f"{num_classes} outputs")
        report["problems"] = problems
        return report
    images, labels = tf.boolean_mask(images, known), labels[known]

    correct = _correct(logits[known], labels + offset)
    accuracy = float(correct.mean())
    counts = np.bincount(labels, minlength=num_data_classes)
    chance = max(1.0 / num_data_classes, counts.max() / len(labels))
    report.update(accuracy=accuracy, chance=float(chance),
                  near_chance_below=float(chance + NEAR_CHANCE * (1 - chance)))

    if num_classes == num_data_classes + 1:
        other = _correct(logits[known], labels + 1 - offset)
        report["background"] = {
            "has_background": bool(offset),
            "index0_top1_fraction": float(np.mean(np.argmax(logits[known], -1) == 0)),
            "accuracy_labels_plus_1": float((correct if offset else other).mean()),
            "accuracy_labels_as_is": float((other if offset else correct).mean()),
        }
        if _clearly_better(other, correct):
            problems.append(
                f"reading logit 0 as {'a class' if offset else 'background'} gives accuracy "
                f"{other.mean():.3f}: set "
                f"classifier_spec.has_background={'False' if offset else 'True'}")

    conventions, best, best_correct = {}, None, correct
    current = _current_convention(classifier.spec.value_range)
    for value_range in RANGES:
        for order in ORDERS:
            convention = Convention(value_range, order)
            if convention == current:
                conventions[convention.name] = accuracy
                continue
            converted = _convert(classifier, convention)
            right = _correct(_numpy(converted(images)), labels + offset)
            conventions[convention.name] = float(right.mean())
            if right.mean() > best_correct.mean():
                best, best_correct = convention.name, right
    report["conventions"] = conventions
    report["current_convention"] = current.name if current else None
    report["best_convention"] = best or report["current_convention"]
    if best is not None and _clearly_better(best_correct, correct):
        problems.append(
            f"with inputs in {best} it is {best_correct.mean():.3f}: " + _fix_for(best, current))
    elif accuracy < report["near_chance_below"]:
        problems.append(
            "no common input convention does clearly better; check the classifier, its "
            "spec (classifier_spec.*) and the dataset's labels")
    report["problems"] = problems
    return report


def raise_on_problems(report, accept_risk=False, what="classifier"):
    """Raises a one-line `PreflightError` for the report's problems, unless `accept_risk`.

    Returns:
        The report with `status`: `"ok"`, or `"accepted_risk"` when problems were accepted.
    """
    if not report["problems"]:
        return {**report, "status": "ok"}
    if accept_risk:
        return {**report, "status": "accepted_risk"}
    measured = (
        f"top-1 accuracy {report['accuracy']:.3f} on {report['examples']} held-out images "
        f"(chance {report['chance']:.3f})" if report.get("accuracy") is not None
        else f"{report['examples']} held-out images")
    raise PreflightError(
        f"pre-flight check failed for {what}: {measured}; {'; '.join(report['problems'])} "
        f"(or set {ACCEPT_FLAG} to go on anyway). Received: "
        f"value_range={tuple(report['value_range'])}")


def check_classifier(classifier, dataset, split="test", data_dir=None, spec=None,
                     num_examples=256, resolution=None, accept_risk=False):
    """Loads the classifier and one batch of `dataset`, runs `preflight`, raises on problems.

    Args:
        classifier: a handle (see `load_classifier`) or a loaded `FrozenClassifier`.
        dataset, split, data_dir: labelled held-out data, as `build_dataset` takes them.
        spec: the classifier's spec or `classifier_spec` overrides (handles only).
        num_examples: batch size of the check (fewer when the split is smaller).
        resolution: image size fed to the classifier (default: its input size), e.g. the
            inverter's resolution, so the check sees what training will feed.
        accept_risk: return the report (`status="accepted_risk"`) instead of raising.

    Returns:
        The report of `preflight`, with `status`, `dataset` and `split`.

    Raises:
        PreflightError: one line, when a problem is found and `accept_risk` is False.
    """
    if not isinstance(classifier, frozen.FrozenClassifier):
        classifier = frozen.load_classifier(classifier, spec)
    label_mode = _shapes_label_mode(classifier, dataset)
    images, labels = held_out_batch(dataset, split, data_dir,
                                    resolution or classifier.spec.input_size, num_examples,
                                    label_mode=label_mode)
    num_data_classes = (len(classifier.spec.class_names) if label_mode
                        else _num_data_classes(dataset, data_dir))
    report = preflight(classifier, images, labels, num_data_classes)
    report.update(dataset=str(dataset), split=split)
    if label_mode:
        report["label_mode"] = label_mode
    return raise_on_problems(report, accept_risk, f"classifier '{classifier.handle}'")


def check_config(config, classifier=None):
    """`check_classifier` for a training config: its classifier, eval split and resolution.

    Settings (defaults in `configs/base.py`): `config.preflight.accept_risk`,
    `config.preflight.num_examples`; `config.preflight.enabled=False` skips the check (returns
    None). `classifier`: the config's classifier already loaded (a `FrozenClassifier`), so a
    training run loads it once; default: loaded here from `config.classifier`.
    """
    settings = config.preflight
    if not settings.enabled:
        return None
    try:
        return check_classifier(
            config.classifier if classifier is None else classifier, config.dataset,
            config.eval_split, config.data_dir,
            spec=config.classifier_spec, num_examples=settings.num_examples,
            resolution=config.resolution, accept_risk=settings.accept_risk)
    except PreflightError as error:
        raise PreflightError(as_flags(str(error), "--config.")) from None


def as_flags(message, prefix):
    """`message` with its settings spelt as command-line flags, e.g. prefix `"--config."`."""
    for key in ("classifier_spec.", "preflight."):
        message = message.replace(f"set {key}", f"set {prefix}{key}")
    return message


def held_out_batch(dataset, split, data_dir, resolution, num_examples, label_mode=None):
    """`(images [n, r, r, 3] in [-1, 1], labels int [n])`: the first n examples of a split.

    `label_mode` (`shapes` only): labels of that mode of `shapes.LABEL_MODES`, from the factors.
    """
    from logit_inversion.data.pipeline import build_dataset  # pylint: disable=import-outside-toplevel

    extra = shapes.FACTOR_NAMES if label_mode else ()
    ds = build_dataset(dataset, split, resolution=resolution, batch_size=1, data_dir=data_dir,
                       training=False, extra_features=extra
                       ).unbatch().take(num_examples).batch(num_examples)
    batch = next(iter(ds), None)
    if batch is None:
        raise PreflightError(
            f"pre-flight check: split '{split}' of '{dataset}' has no images. "
            f"Received: dataset={dataset}, split={split}")
    labels = batch["label"].numpy()
    if label_mode:
        labels = shapes.relabel(labels, {k: batch[k].numpy() for k in extra}, label_mode)
    return batch["image"], labels


def _shapes_label_mode(classifier, dataset):
    """The `shapes` label mode of a classifier of other classes than the shape (e.g. shape x
    quadrant), when checked on `shapes`: its labels then come from the factors."""
    if str(dataset).split(":")[0] != "shapes":
        return None
    mode = shapes.label_mode_of(classifier.spec.class_names)
    return None if mode == "shape" else mode


def _num_data_classes(dataset, data_dir):
    try:
        from logit_inversion.data import pipeline  # pylint: disable=import-outside-toplevel

        if pipeline.is_folder_source(dataset):
            return None
        label = pipeline._tfds_builder(dataset, data_dir).info.features["label"]
        return int(label.num_classes)
    except Exception:  # pylint: disable=broad-except  (then: 1 + the largest label seen)
        return None


def _numpy(tensor):
    return np.asarray(tf.convert_to_tensor(tensor), np.float64)


def _correct(logits, targets):
    return np.argmax(logits, -1) == targets


def _clearly_better(candidate, current):
    """Paired comparison of per-example correctness on the same images (McNemar)."""
    gained = int(np.sum(candidate & ~current))
    lost = int(np.sum(current & ~candidate))
    if gained + lost == 0:
        return False
    z = (gained - lost) / np.sqrt(gained + lost)
    return (gained - lost) / len(current) >= MIN_GAIN and z >= MIN_Z


def _output_stats(logits):
    row_sums = logits.sum(-1)
    in_unit = bool(logits.min() >= -1e-6 and logits.max() <= 1 + 1e-6)
    return {
        "output_min": float(logits.min()),
        "output_max": float(logits.max()),
        "output_row_sum_mean": float(row_sums.mean()),
        "outputs_look_like_probabilities": in_unit and bool(np.all(np.abs(row_sums - 1) < 1e-3)),
    }


def _label_offset(classifier, num_classes, num_data_classes):
    """Logit index of label 0: 0, 1 (background logit first), or None (labels do not fit)."""
    if num_data_classes is None:
        return None
    if num_classes == num_data_classes:
        return 0
    if num_classes == num_data_classes + 1:
        return 1 if classifier.spec.has_background else 0
    return None


def _current_convention(value_range):
    for name, (offset, scale) in RANGES.items():
        low, high = (0 - offset[0]) / scale[0], (1 - offset[0]) / scale[0]
        if len(set(offset)) == 1 and np.allclose((low, high), value_range):
            return Convention(name)
    return None


def _fix_for(best, current):
    convention = next(Convention(r, o) for r in RANGES for o in ORDERS
                      if Convention(r, o).name == best)
    fixes = []
    if current is None or convention.value_range != current.value_range:
        fixes.append("set " + _RANGE_FLAGS[convention.value_range])
    if convention.order == "BGR":
        fixes.append("the classifier expects BGR channel order (this package feeds RGB): "
                     "reverse the channels inside the model")
    return " and ".join(fixes)


def _convert(classifier, convention):
    """`classifier` fed `convention` instead of its spec's range (same preprocessing)."""
    return frozen.FrozenClassifier(_Reconvert(classifier.model, classifier.spec.value_range,
                                              convention), classifier.spec, classifier.handle)


class _Reconvert(tf.Module):
    """Undoes the spec's value range, applies another convention, calls the model."""

    def __init__(self, model, value_range, convention):
        super().__init__()
        self.model = model
        self.low, self.high = value_range
        offset, scale = RANGES[convention.value_range]
        self.offset = tf.constant(offset, tf.float32)
        self.scale = tf.constant(scale, tf.float32)
        self.bgr = convention.order == "BGR"

    def __call__(self, images):
        fractions = (images - self.low) / (self.high - self.low)   # pixel fractions in [0, 1]
        images = (fractions - self.offset) / self.scale
        if self.bgr:
            images = images[..., ::-1]
        if isinstance(self.model, keras.layers.Layer):
            return self.model(images, training=False)
        return self.model(images)
