"""The computations behind `bin/explore`'s page, free of any web code.

An `Explorer` holds one or two inverters (opened with `serving.model.open_model`, so a
`bin/train` workdir and its export give the same pictures) and answers what the page asks:

- `source_from_bytes` / `source_from_gallery`: an image as every model sees it. Uploaded files
  are decoded as the export's `reconstruct_encoded` decodes them (EXIF orientation applied,
  central square crop, resize to R) and then rounded to uint8, as `bin/reconstruct` rounds its
  source images: the view can then be re-made from the stored R×R PNG through `bin/reconstruct`.
- `render(source, settings)`: Φ(x), its top-5, the edited logits, G(edited, ε) with its own top-5
  under Φ, and K reconstructions for K noise seeds with their per-pixel std map.
- `interpolate(a, b, seed)`: G((1 − α) Φ(a) + α Φ(b), ε) along α, and where the class
  switches.
- `view_record(...)`: the JSON that reproduces a view (see `reproduce`).

Noise: sample j of a view with seed s uses `models.noise.noise_from_seeds(s + j)`, the
convention of `bin/reconstruct` (one image, `--num_samples=K --seed=s`) and of the export's
`reconstruct` signature; sample 0 is the main reconstruction.

Edits, as `bin/analyze --experiment manipulations` defines them, combined:
`z' = s·z + c·ŝ + σ·ŝ·n + Σ_k δ_k·ŝ·e_k`, with ŝ the std of this image's logits,
n ~ N(0, I) drawn from `seed + 1` (the manipulations experiment's perturbation convention) and
e_k the k-th unit vector (one slider per top class). The defaults (s = 1, c = σ = δ = 0)
leave z unchanged, so the unedited view is exactly G(Φ(x), ε).
"""

import base64
import dataclasses
import hashlib
import io
import json
import re

import numpy as np
import tensorflow as tf

from logit_inversion.analysis import common
from logit_inversion.serving import model as model_handle
from logit_inversion.data import exif, pipeline
from logit_inversion.models import noise as noise_lib
from logit_inversion.serving import export

VIEW_FORMAT = "logit_inversion.explore.view/1"
TOP = 5                # classes listed, and classes given their own slider
MAX_SAMPLES = 16       # K, the most noise samples in the invariance grid
INTERPOLATION_STEPS = 9


class InputError(ValueError):
    """Something the user gave (a file, a setting) that cannot be used; the message is worded
    for the page, in one line."""


def open_models(paths, class_names=None):
    """The inverters at `paths` (one, or two to compare), as `serving.model.InverterModel`s.

    Raises:
        ValueError: in one line, when a path is not a workdir or export, or two models
            disagree on the number of classes (the same edits could not drive both).
    """
    if not paths:
        raise ValueError("Expected --model PATH (a bin/train workdir or an exported inverter).")
    if len(paths) > 2:
        raise ValueError(f"Expected one --model, or two to compare. Received: {len(paths)}")
    models = []
    for path in paths:
        try:
            models.append(model_handle.open_model(path, name=_model_name(path),
                                                    class_names=class_names))
        except Exception as error:  # pylint: disable=broad-except
            # Whatever the loader trips on (a missing folder, a SavedModel of something else,
            # a corrupt checkpoint), the user needs one line naming the path, not a traceback.
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ValueError(f"{path} is not an inverter (a bin/train workdir or an exported "
                             f"inverter): {first}") from None
    if len({m.num_classes for m in models}) > 1:
        raise ValueError("The two models must have the same number of classes to share the "
                         f"logit controls. Received: {[m.num_classes for m in models]}")
    return models


def _model_name(path):
    """A label for the page: the folder's name, or its parent's for a version folder
    (`savedmodels/NAME/3` → `NAME/3`)."""
    path = str(path).rstrip("/")
    base = path.rsplit("/", 1)[-1]
    if base.isdigit() and "/" in path:
        return f"{path.rsplit('/', 2)[-2]}/{base}"
    return base


def decode_image(data, resolution):
    """Encoded image bytes → uint8 `[R, R, 3]`, prepared as the export serves them, then rounded.

    Raises:
        InputError: the bytes are empty, not an image, or a truncated one.
    """
    if not data:
        raise InputError("The file is empty: nothing to read.")
    try:
        image = exif.decode_upright(tf.constant(bytes(data)))
    except (tf.errors.OpError, ValueError) as error:
        raise InputError("This file is not a readable image (JPEG, PNG, GIF or BMP), or it is "
                         f"truncated: {_decoder_message(error)}") from None
    return resize_image(image, resolution)


def _decoder_message(error):
    """TensorFlow's decoder error without its graph-node and op decorations."""
    text = str(getattr(error, "message", error)).strip()
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text, flags=re.S)
    return (text.splitlines() or ["decoder error"])[0].rstrip(".") + "."


def load_gallery(model, dataset, split, data_dir, count):
    """The first `count` images of `split` of `dataset` at `model`'s resolution.

    Returns:
        `(uint8 [n, R, R, 3], label name per image or None, the dataset's class names or
        None, "dataset:split")`; the pixels read and rounded as `bin/reconstruct` reads its
        sources.
    """
    from logit_inversion.analysis import data  # pylint: disable=import-outside-toplevel

    images = data.load_images(dataset, split, model.resolution, count, data_dir=data_dir,
                              minimum=1)
    pixels = _quantize((images.images + 1.0) * 127.5)
    names = None
    if images.label_names:
        names = [images.label_names[i] if 0 <= i < len(images.label_names) else ""
                 for i in images.labels]
    return pixels, names, images.label_names, f"{dataset}:{split}"


def resize_image(image, resolution):
    """uint8 `[h, w, 3]` → uint8 `[R, R, 3]`: central crop and resize, rounded."""
    return _quantize(pipeline.center_crop_and_resize(tf.convert_to_tensor(image), resolution))


def _quantize(pixels):
    """Pixel values in [0, 255] (float) → uint8, rounded as `bin/reconstruct` rounds sources."""
    return np.asarray(tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 255.0)), tf.uint8))


def to_model_range(images):
    """uint8 pixels → float32 in [-1, 1], as the export and `bin/reconstruct` feed Φ."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


def to_uint8(images):
    """float images in [-1, 1] (already on the uint8 grid) → uint8."""
    return np.asarray(export.to_uint8(tf.constant(images, tf.float32)))


def noise_for_seeds(seeds, noise_dim):
    """ε for each seed: `models.noise.noise_from_seeds`, the package's one convention."""
    return np.asarray(noise_lib.noise_from_seeds(tf.constant(np.asarray(seeds, np.int64)),
                                                 noise_dim))


def top_classes(logits, names, k=TOP):
    """`[(name, probability, index)]` of the `k` most probable classes of one logit vector."""
    probabilities = model_handle.softmax(np.asarray(logits)[None])[0]
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(names[i], float(probabilities[i]), int(i)) for i in order]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a view does to the logits and which noise it draws.

    Attributes:
        seed: noise seed of sample 0 (sample j: seed + j).
        shift: c, in units of ŝ.
        scale: s, a factor.
        sigma: σ of the Gaussian perturbation, in units of ŝ.
        class_deltas: `((class index, δ in units of ŝ), ...)`, zero deltas left out.
        samples: K, reconstructions in the invariance grid (0: no grid).
    """

    seed: int = 0
    shift: float = 0.0
    scale: float = 1.0
    sigma: float = 0.0
    class_deltas: tuple = ()
    samples: int = 8

    def __post_init__(self):
        for key in ("shift", "scale", "sigma"):
            value = getattr(self, key)
            if not np.isfinite(value):
                raise InputError(f"{key} must be a finite number. Received: {key}={value}")
        if not 0 <= int(self.samples) <= MAX_SAMPLES:
            raise InputError(f"The number of samples K must be in [0, {MAX_SAMPLES}]. "
                             f"Received: {self.samples}")
        if not -2**62 < int(self.seed) < 2**62:
            raise InputError(f"The seed must be an integer below 2**62 in size. "
                             f"Received: {self.seed}")

    @property
    def edited(self):
        """Whether the logits are changed at all (else the view is plain G(Φ(x), ε))."""
        return (self.shift != 0 or self.scale != 1 or self.sigma != 0
                or any(d != 0 for _, d in self.class_deltas))

    def to_json(self):
        return {"seed": int(self.seed), "shift": float(self.shift), "scale": float(self.scale),
                "sigma": float(self.sigma),
                "class_deltas": {str(k): float(d) for k, d in self.class_deltas},
                "samples": int(self.samples)}

    @classmethod
    def from_json(cls, record):
        deltas = tuple(sorted((int(k), float(d))
                              for k, d in record.get("class_deltas", {}).items() if d))
        return cls(seed=int(record["seed"]), shift=float(record["shift"]),
                   scale=float(record["scale"]), sigma=float(record["sigma"]),
                   class_deltas=deltas, samples=int(record.get("samples", 0)))


def logit_unit(logits):
    """ŝ for one image: the std of its logits (the manipulations experiment's unit, which
    averages this over images)."""
    return common.logit_scale(np.asarray(logits)[None])


def edit_logits(logits, settings, unit):
    """z' for one logit vector `[K]`; see the module docstring."""
    logits = np.asarray(logits, np.float32)
    unit = np.float32(unit)
    perturbation = np.random.default_rng(int(settings.seed) + 1).standard_normal(
        logits.shape).astype(np.float32)
    edited = logits * np.float32(settings.scale) + np.float32(settings.shift) * unit
    edited = edited + np.float32(settings.sigma) * unit * perturbation
    for index, delta in settings.class_deltas:
        if not 0 <= index < logits.shape[-1]:
            raise InputError(f"Class index {index} is not one of the {logits.shape[-1]} classes.")
        edited[index] += np.float32(delta) * unit
    return edited.astype(np.float32)


@dataclasses.dataclass
class Source:
    """An image as every model sees it.

    Attributes:
        name: the file name or `split[index]`, for the records.
        key: a content hash, for caching Φ(x).
        images: per model, uint8 `[R, R, 3]` at that model's resolution.
    """

    name: str
    key: str
    images: list


@dataclasses.dataclass
class ModelView:
    """What one model shows for a source and settings.

    Attributes:
        logits, edited: float32 `[K]`, Φ(x) and z'.
        unit: ŝ.
        top, edited_top, reconstruction_top: `top_classes` of Φ(x), of z', of Φ(G(z', ε)).
        reconstruction: uint8 `[R, R, 3]`, G(z', ε_seed).
        samples: uint8 `[K, R, R, 3]` (sample 0 is `reconstruction`), or None when K = 0.
        std_map: float32 `[R, R]`, per-pixel std over the samples (pixel values in [0, 1],
            averaged over channels), or None.
    """

    logits: np.ndarray
    edited: np.ndarray
    unit: float
    top: list
    edited_top: list
    reconstruction: np.ndarray
    reconstruction_top: list
    samples: np.ndarray | None
    std_map: np.ndarray | None

    @property
    def mean_std(self):
        return float(self.std_map.mean()) if self.std_map is not None else None


class Explorer:
    """The state the page shares between requests: models, their gallery, cached logits.

    Args:
        models: one or two `AnalysisModel`s.
        gallery: uint8 `[n, R0, R0, 3]` images of the first model's test split, or None.
        gallery_labels: their label names (or None).
        gallery_source: a description of where they come from (`dataset:split`).
    """

    def __init__(self, models, gallery=None, gallery_labels=None, gallery_source=""):
        self.models = list(models)
        self.gallery = gallery
        self.gallery_labels = gallery_labels
        self.gallery_source = gallery_source
        self._logits = {}

    @property
    def class_names(self):
        return self.models[0].class_names

    def source_from_bytes(self, data, name="upload"):
        """An uploaded file as a `Source`; InputError when it is not a readable image."""
        if not data:
            raise InputError("The file is empty: nothing to read.")
        key = hashlib.sha256(bytes(data)).hexdigest()
        return Source(name, key, [decode_image(data, m.resolution) for m in self.models])

    def source_from_array(self, image, name):
        """uint8 `[h, w, 3]` pixels (already upright) as a `Source`."""
        image = np.asarray(image, np.uint8)
        key = hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()
        return Source(name, key, [resize_image(image, m.resolution) for m in self.models])

    def source_from_gallery(self, index):
        """Image `index` of the gallery as a `Source`."""
        if self.gallery is None or not 0 <= int(index) < len(self.gallery):
            raise InputError(f"No gallery image {index}.")
        return self.source_from_array(self.gallery[int(index)],
                                      f"{self.gallery_source}[{int(index)}]")

    def logits(self, source):
        """Φ(x) `[K]` per model (cached); InputError when the classifier gives NaN or Inf."""
        cached = self._logits.get(source.key)
        if cached is None:
            cached = [np.asarray(m.classify(to_model_range(image[None])))[0]
                      for m, image in zip(self.models, source.images)]
            for model, logits in zip(self.models, cached):
                if not np.all(np.isfinite(logits)):
                    raise InputError(f"The classifier of {model.name} returned NaN or Inf logits "
                                     "for this image: there is nothing to invert.")
            if len(self._logits) > 64:   # bound the cache of a long-running page
                self._logits.clear()
            self._logits[source.key] = cached
        return cached

    def render(self, source, settings):
        """A `ModelView` per model for `source` under `settings`."""
        views = []
        for model, logits in zip(self.models, self.logits(source)):
            unit = logit_unit(logits)
            edited = edit_logits(logits, settings, unit)
            if not np.all(np.isfinite(edited)):
                raise InputError("The edited logits are not finite; use smaller edits.")
            count = max(int(settings.samples), 1)
            seeds = int(settings.seed) + np.arange(count)
            images = model.generate(np.repeat(edited[None], count, 0),
                                    noise_for_seeds(seeds, model.noise_dim))
            reconstruction_logits = model.classify(images[:1])[0]
            samples = std_map = None
            if settings.samples:
                samples = to_uint8(images)
                std_map = (images.astype(np.float32) * 0.5).std(axis=0).mean(-1)
            views.append(ModelView(
                logits=logits, edited=edited, unit=unit,
                top=top_classes(logits, model.class_names),
                edited_top=top_classes(edited, model.class_names),
                reconstruction=to_uint8(images[:1])[0],
                reconstruction_top=top_classes(reconstruction_logits, model.class_names),
                samples=samples, std_map=std_map))
        return views

    def interpolate(self, source_a, source_b, seed, steps=INTERPOLATION_STEPS):
        """Per model: G((1 − α) Φ(a) + α Φ(b), ε_seed) for `steps` values of α in [0, 1].

        Returns:
            A list of dicts: `alphas` `[steps]`, `frames` uint8 `[steps, R, R, 3]`, `classes`
            (names of Φ's top-1 of each frame), `switch_alpha` (the first α whose frame's top-1
            differs from the first frame's, or None) and `logit_switch_alpha` (the same for
            the interpolated logits themselves).
        """
        if steps < 2:
            raise InputError(f"steps must be at least 2. Received: {steps}")
        alphas = np.linspace(0.0, 1.0, steps, dtype=np.float32)
        results = []
        for model, a, b in zip(self.models, self.logits(source_a), self.logits(source_b)):
            path = (1 - alphas)[:, None] * a[None] + alphas[:, None] * b[None]
            noise = np.repeat(noise_for_seeds([int(seed)], model.noise_dim), steps, 0)
            frames = model.generate(path, noise)
            top1 = np.argmax(model.classify(frames), -1)
            results.append({
                "alphas": alphas, "frames": to_uint8(frames),
                "classes": [model.class_names[i] for i in top1],
                "switch_alpha": _switch(top1, alphas),
                "logit_switch_alpha": _switch(np.argmax(path, -1), alphas)})
        return results

    def view_record(self, source, settings, views, model_index=0):
        """The JSON-ready record that reproduces model `model_index`'s view."""
        model, view = self.models[model_index], views[model_index]
        source_png = encode_png(source.images[model_index])
        record = {
            "format": VIEW_FORMAT,
            "model": model.path, "model_kind": model.kind,
            "resolution": model.resolution, "noise_dim": model.noise_dim,
            "source": {"name": source.name, "png_base64": base64.b64encode(source_png).decode()},
            "settings": settings.to_json(),
            "seed": int(settings.seed),
            "noise": ("models.noise.noise_from_seeds([seed + j], noise_dim) for sample j; "
                      "sample 0 is the reconstruction"),
            "logit_unit": float(view.unit),
            "logits": [float(v) for v in view.logits],
            "edited_logits": [float(v) for v in view.edited],
            "class_names": list(model.class_names),
            "top5": _top_json(view.top),
            "reconstruction_top5": _top_json(view.reconstruction_top),
            "reconstruction_sha256": hashlib.sha256(view.reconstruction.tobytes()).hexdigest(),
            "reproduce": reproduce_instructions(model.path, settings),
        }
        return record


def reproduce_instructions(model_path, settings):
    """How to re-make a view: through the served SavedModel always, through `bin/reconstruct`
    when the logits are unedited (it reconstructs images, it does not take logits)."""
    steps = {
        "any_view": ("python -m logit_inversion.explore.reproduce VIEW.json OUT.png "
                     "(G(edited_logits, noise_from_seeds(seed)) through the same model)"),
        "saved_model": ("serving.loading.load(EXPORT).generate([edited_logits], "
                        "seed=[seed]) gives the reconstruction"),
    }
    command = (f"python -m logit_inversion.explore.reproduce VIEW.json --source_folder SRC && "
               f"bin/reconstruct --model={model_path} --dataset=SRC --split=train "
               f"--seed={int(settings.seed)} --num_samples={max(int(settings.samples), 1)} "
               f"--output=OUT")
    if settings.edited:
        steps["bin_reconstruct"] = ("not for this view: its logits are edited, and "
                                    "bin/reconstruct takes images; reset the edits for a view "
                                    "it reproduces")
    else:
        steps["bin_reconstruct"] = command
    return steps


def encode_png(image):
    """PNG bytes of uint8 `[h, w, 3]` (lossless, so a stored source is exact)."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def read_view(path_or_record):
    """A view JSON (a path or the parsed dict), checked for its format."""
    record = path_or_record
    if not isinstance(record, dict):
        with open(path_or_record, encoding="utf-8") as f:
            record = json.load(f)
    if record.get("format") != VIEW_FORMAT:
        raise ValueError(f"Expected a view JSON written by bin/explore ({VIEW_FORMAT}). "
                         f"Received: format={record.get('format')!r}")
    return record


def source_image(record):
    """The uint8 `[R, R, 3]` source image stored in a view record."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    data = base64.b64decode(record["source"]["png_base64"])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _switch(classes, alphas):
    changed = np.nonzero(np.asarray(classes) != classes[0])[0]
    return float(alphas[changed[0]]) if changed.size else None


def _top_json(top):
    return [{"class": name, "index": index, "probability": p} for name, p, index in top]
