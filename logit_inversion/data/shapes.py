"""`shapes`: a generated TFDS dataset of anti-aliased coloured shapes on a plain background.

Six classes (circle, square, triangle, plus, ring, star) rendered at 32x32 with known nuisance
factors (colours, position, scale, rotation). The class is always easy to read and the nuisance
factors are recorded per example, so an inverter's reconstructions can be checked for which
factors the classifier's logits keep (class, maybe position) and which they throw away (colour,
rotation): the invariances of the paper, on a dataset that trains in minutes on a CPU.

`LABEL_MODES` give other classes to learn from the same images, each shape split by a factor
(e.g. `shape_quadrant`: shape x quadrant of its position, 24 classes): a classifier trained on
them must keep that factor in its logits, a positive control for the factor audits.

Nothing is downloaded: after `import logit_inversion.data.shapes`,
`tfds.load("shapes", data_dir=...)` generates the dataset on first use (~20 s).

Example:

```python
import numpy as np
from logit_inversion.data import shapes

rng = np.random.default_rng(0)
factors = shapes.sample_factors(rng, 4)
images = shapes.render_shapes(np.arange(4), **factors)  # uint8 [4, 32, 32, 3]
```
"""

import colorsys

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

CLASS_NAMES = ("circle", "square", "triangle", "plus", "ring", "star")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 32

# Factor names, in the order `render_shapes` takes them; each is a float32 feature.
FACTOR_NAMES = (
    "shape_hue",
    "background_hue",
    "position_x",
    "position_y",
    "scale",
    "rotation",
)

# Factor ranges in pixels of a 32x32 image. With the centre at least 11 px from the border and
# circumradius at most 11 px, every shape stays (almost) entirely inside the image.
POSITION_RANGE = (11.0, 21.0)
SCALE_RANGE = (7.0, 11.0)
# The background hue is the shape hue plus an offset from this range (mod 1), so the two colours
# are always far apart on the colour wheel.
BACKGROUND_HUE_OFFSET = (0.25, 0.75)

# The shape is a fully saturated, bright colour; the background a dull, dark one. The luminance
# gap keeps the shape visible whatever the hues (e.g. a blue shape on a yellowish background).
SHAPE_SATURATION, SHAPE_VALUE = 1.0, 1.0
BACKGROUND_SATURATION, BACKGROUND_VALUE = 0.45, 0.3

# Shape geometry, relative to the circumradius.
RING_INNER_RADIUS = 0.5
PLUS_HALF_WIDTH = 0.3
STAR_INNER_RADIUS = 0.45
STAR_POINTS = 5

SUPERSAMPLE = 4

# Label modes: which classes a classifier trained on `shapes` tells apart. `shape` is the
# dataset's own label; the others split each shape by a nuisance factor, so a classifier trained
# on them must keep that factor in its logits (a positive control for the factor audits, where
# the `shape` classifier is the negative one). Each split is `(factor, thresholds, names)`: the
# bin is the number of thresholds at or below the factor's value. The class index is
# `shape * bins + bin`, bins in mixed radix over the splits in order.
POSITION_MIDDLE = sum(POSITION_RANGE) / 2
LABEL_MODES = {
    "shape": (),
    "shape_side": (("position_x", (POSITION_MIDDLE,), ("left", "right")),),
    "shape_quadrant": (
        ("position_y", (POSITION_MIDDLE,), ("top", "bottom")),
        ("position_x", (POSITION_MIDDLE,), ("left", "right")),
    ),
    "shape_hue": (("shape_hue", (0.25, 0.5, 0.75), ("hue0", "hue1", "hue2", "hue3")),),
}
_RENDER_CHUNK = 256  # images rendered at once: bounds memory at ~100 MB with 4x supersampling


def sample_factors(rng, n):
    """Draws `n` sets of nuisance factors, uniformly within their ranges.

    Args:
        rng: a `np.random.Generator`.
        n: number of examples.

    Returns:
        Dict from each name in `FACTOR_NAMES` to a float32 array of shape `[n]`.
    """
    if n < 0:
        raise ValueError(f"`n` must be non-negative. Received: n={n}")
    shape_hue = rng.uniform(0.0, 1.0, n)
    offset = rng.uniform(*BACKGROUND_HUE_OFFSET, n)
    factors = {
        "shape_hue": shape_hue,
        "background_hue": np.mod(shape_hue + offset, 1.0),
        "position_x": rng.uniform(*POSITION_RANGE, n),
        "position_y": rng.uniform(*POSITION_RANGE, n),
        "scale": rng.uniform(*SCALE_RANGE, n),
        "rotation": rng.uniform(0.0, 2 * np.pi, n),
    }
    return {name: value.astype(np.float32) for name, value in factors.items()}


def render_shapes(
    labels,
    shape_hue,
    background_hue,
    position_x,
    position_y,
    scale,
    rotation,
    size=IMAGE_SIZE,
    supersample=SUPERSAMPLE,
):
    """Renders anti-aliased shapes from their class and nuisance factors.

    Factors are in pixels of a 32x32 image whatever `size` is, so the same factors render the
    same picture at any resolution. Anti-aliasing: each pixel is the mean of a
    `supersample x supersample` grid of point samples.

    Args:
        labels: int array `[batch]`, indices into `CLASS_NAMES`.
        shape_hue: float array `[batch]` in [0, 1).
        background_hue: float array `[batch]` in [0, 1).
        position_x: float array `[batch]`, shape centre column in pixels (0 = left edge).
        position_y: float array `[batch]`, shape centre row in pixels (0 = top edge).
        scale: float array `[batch]`, circumradius in pixels.
        rotation: float array `[batch]`, radians, counter-clockwise on screen.
        size: output height and width.
        supersample: point samples per pixel along each axis.

    Returns:
        uint8 array `[batch, size, size, 3]`.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    factors = [
        np.asarray(f, dtype=np.float32).reshape(-1)
        for f in (shape_hue, background_hue, position_x, position_y, scale, rotation)
    ]
    for name, value in zip(FACTOR_NAMES, factors):
        if value.shape != labels.shape:
            raise ValueError(
                f"Every factor must have one value per label ({labels.shape[0]}). "
                f"Received: {name} with shape {value.shape}"
            )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(
            f"`labels` must be in [0, {NUM_CLASSES}). Received: labels={np.unique(labels)}"
        )
    if size < 1 or supersample < 1:
        raise ValueError(
            f"`size` and `supersample` must be positive. "
            f"Received: size={size}, supersample={supersample}"
        )
    chunks = [
        _render_chunk(
            labels[i : i + _RENDER_CHUNK],
            *(f[i : i + _RENDER_CHUNK] for f in factors),
            size=size,
            supersample=supersample,
        )
        for i in range(0, labels.size, _RENDER_CHUNK)
    ]
    if not chunks:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.concatenate(chunks)


def _render_chunk(
    labels, shape_hue, background_hue, position_x, position_y, scale, rotation, size, supersample
):
    # Sample points at sub-pixel centres, in 32-px units: pixel i covers [i, i + 1).
    n = size * supersample
    coords = (np.arange(n, dtype=np.float32) + 0.5) * (IMAGE_SIZE / n)
    dx = coords[None, None, :] - position_x[:, None, None]
    dy = coords[None, :, None] - position_y[:, None, None]
    # Shape-frame coordinates: rotate the sample points by -rotation; y points up on screen.
    cos, sin = np.cos(rotation)[:, None, None], np.sin(rotation)[:, None, None]
    u = cos * dx - sin * dy
    v = -sin * dx - cos * dy
    radius = scale[:, None, None]

    inside = np.zeros(u.shape, dtype=bool)
    for label, mask_fn in enumerate(_MASKS):
        rows = labels == label
        if rows.any():
            inside[rows] = mask_fn(u[rows], v[rows], radius[rows])

    # Box-downsample the point samples to pixel coverage (the alpha of the shape).
    alpha = inside.reshape(-1, size, supersample, size, supersample).mean(axis=(2, 4))
    fg = _hsv_to_rgb(shape_hue, SHAPE_SATURATION, SHAPE_VALUE)
    bg = _hsv_to_rgb(background_hue, BACKGROUND_SATURATION, BACKGROUND_VALUE)
    alpha = alpha[..., None]
    image = alpha * fg[:, None, None, :] + (1.0 - alpha) * bg[:, None, None, :]
    return np.round(image * 255.0).astype(np.uint8)


def _hsv_to_rgb(hue, saturation, value):
    """Float RGB `[batch, 3]` in [0, 1] from hues `[batch]`."""
    return np.array([colorsys.hsv_to_rgb(float(h), saturation, value) for h in hue]).reshape(-1, 3)


# Inside tests in the shape's own frame. Each takes coordinates u, v `[b, n, n]` and the
# circumradius `[b, 1, 1]`, and returns a boolean mask `[b, n, n]`.


def _circle(u, v, r):
    return u * u + v * v < r * r


def _square(u, v, r):
    half_side = r / np.sqrt(2.0)
    return np.maximum(np.abs(u), np.abs(v)) < half_side


def _triangle(u, v, r):
    # Equilateral, one vertex on +v: inside when on the inner side of all three edges, each at
    # distance r/2 (the inradius) from the centre along its outward normal.
    inside = np.ones(u.shape, dtype=bool)
    for k in range(3):
        angle = -np.pi / 2 + 2 * np.pi * k / 3  # normals point away from the vertices
        inside &= u * np.cos(angle) + v * np.sin(angle) < r / 2
    return inside


def _plus(u, v, r):
    half_width = PLUS_HALF_WIDTH * r
    au, av = np.abs(u), np.abs(v)
    return ((au < r) & (av < half_width)) | ((av < r) & (au < half_width))


def _ring(u, v, r):
    squared = u * u + v * v
    return (squared < r * r) & (squared > (RING_INNER_RADIUS * r) ** 2)


def _star(u, v, r):
    # Fold the angle into one half-sector [0, pi/points] with a tip (radius r) at 0 and a notch
    # (radius STAR_INNER_RADIUS * r) at pi/points; then it is one straight-edge test.
    half_sector = np.pi / STAR_POINTS
    angle = np.mod(np.arctan2(u, v), 2 * half_sector)  # tip on +v
    angle = np.minimum(angle, 2 * half_sector - angle)
    dist = np.sqrt(u * u + v * v)
    x, y = dist * np.cos(angle), dist * np.sin(angle)
    # Edge from the tip (r, 0) to the notch (ri cos a, ri sin a); inside = same side as origin.
    ri = STAR_INNER_RADIUS * r
    ex, ey = ri * np.cos(half_sector) - r, ri * np.sin(half_sector)
    return ex * y - ey * (x - r) > 0


_MASKS = (_circle, _square, _triangle, _plus, _ring, _star)


def _check_label_mode(mode):
    if mode not in LABEL_MODES:
        raise ValueError(f"`label_mode` must be one of {tuple(LABEL_MODES)}. Received: "
                         f"label_mode={mode!r}")
    return LABEL_MODES[mode]


def label_names(mode):
    """Class names of label mode `mode`, in class-index order, e.g. `circle_top_left`."""
    names = [(shape,) for shape in CLASS_NAMES]
    for _, _, bin_names in _check_label_mode(mode):
        names = [prefix + (name,) for prefix in names for name in bin_names]
    return tuple("_".join(parts) for parts in names)


def label_mode_of(class_names):
    """The label mode whose class names are `class_names`, or None (not a `shapes` labelling)."""
    names = tuple(class_names or ())
    return next((mode for mode in LABEL_MODES if label_names(mode) == names), None)


def relabel(labels, factors, mode):
    """Class indices of label mode `mode` from shape labels and factors (numpy).

    Args:
        labels: int array `[n]`, indices into `CLASS_NAMES`.
        factors: dict from factor name to float array `[n]` (those the mode splits by).
        mode: a key of `LABEL_MODES`.

    Returns:
        int64 array `[n]`, indices into `label_names(mode)`.
    """
    out = np.asarray(labels, np.int64)
    for name, thresholds, bin_names in _check_label_mode(mode):
        value = np.asarray(factors[name], np.float32)
        bins = (value[..., None] >= np.asarray(thresholds, np.float32)).sum(-1)
        out = out * len(bin_names) + bins
    return out


def relabel_tf(labels, factors, mode):
    """`relabel` on tensors, for `tf.data` pipelines: int64 `[n]` (or scalar) class indices."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    out = tf.cast(labels, tf.int64)
    for name, thresholds, bin_names in _check_label_mode(mode):
        value = tf.cast(factors[name], tf.float32)[..., None]
        above = tf.cast(value >= tf.constant(thresholds, tf.float32), tf.int64)
        out = out * len(bin_names) + tf.reduce_sum(above, -1)
    return out


def generate_split(seed, n):
    """Labels, factors and images of one split: identical for the same `seed` and `n`.

    Returns:
        `(labels, factors, images)`: int64 `[n]`, dict of float32 `[n]`, uint8 `[n, 32, 32, 3]`.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    factors = sample_factors(rng, n)
    images = render_shapes(labels, **factors)
    return labels, factors, images


class Shapes(tfds.core.GeneratorBasedBuilder):
    """Anti-aliased coloured shapes, 32x32, 6 classes, with their nuisance factors."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    # Split sizes and seeds. A builder instance may override `split_sizes` before
    # `download_and_prepare` (see `build_shapes`), e.g. for a tiny copy in tests.
    SPLIT_SIZES = {"train": 20_000, "test": 2_000}
    SPLIT_SEEDS = {"train": 20210701, "test": 20210702}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.split_sizes = dict(self.SPLIT_SIZES)

    # TFDS finds this file through `importlib_resources`, a package not installed here; the path
    # is only used to look for a (non-existent) checksums file, so give it directly.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(__file__)

    def _info(self):
        factor_features = {
            name: tfds.features.Scalar(dtype=np.float32) for name in FACTOR_NAMES
        }
        return self.dataset_info_from_configs(
            description=__doc__.split("\n\n")[0],
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                    **factor_features,
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in self.split_sizes}

    def _generate_examples(self, split):
        labels, factors, images = generate_split(self.SPLIT_SEEDS[split], self.split_sizes[split])
        for i in range(labels.shape[0]):
            example = {"image": images[i], "label": int(labels[i])}
            example.update({name: factors[name][i] for name in FACTOR_NAMES})
            yield i, example


def build_shapes(data_dir, train_size=None, test_size=None):
    """Generates `shapes` into `data_dir` (optionally with other split sizes) and returns the builder.

    Example:

    ```python
    builder = build_shapes("/tmp/tfds", train_size=60, test_size=30)
    ds = tfds.load("shapes", data_dir="/tmp/tfds", split="test")
    ```
    """
    builder = Shapes(data_dir=data_dir)
    for split, size in (("train", train_size), ("test", test_size)):
        if size is not None:
            if size < 1:
                raise ValueError(f"Split sizes must be positive. Received: {split}_size={size}")
            builder.split_sizes[split] = int(size)
    builder.download_and_prepare()
    return builder
