"""The images an analysis runs on: the first n of a dataset split, in the model's form.

Example:

```python
data = load_images("shapes", "test", resolution=32, num_images=64)
data.images.shape   # (64, 32, 32, 3), float32 in [-1, 1]
data.factors        # for `shapes`: dict of [64] arrays (shape_hue, ..., rotation)
```
"""

import dataclasses

import numpy as np

from logit_inversion.data import pipeline, shapes

# Images read per pipeline batch (the pipeline drops a last partial batch).
_CHUNK = 50


@dataclasses.dataclass
class Images:
    """A batch of analysis images.

    Attributes:
        images: float32 `[n, R, R, 3]` in [-1, 1].
        labels: int `[n]`, -1 where the source has none.
        factors: dict of `[n]` nuisance factors (the `shapes` dataset), else None.
        label_names: the dataset's class names, when it has them.
        source: a description of where the images come from, for the records.
    """

    images: np.ndarray
    labels: np.ndarray
    factors: dict | None = None
    label_names: tuple | None = None
    source: str = ""

    def __len__(self):
        return int(self.images.shape[0])

    def take(self, n):
        """The first `n` images (all of them if fewer)."""
        factors = None if self.factors is None else {k: v[:n] for k, v in self.factors.items()}
        return Images(self.images[:n], self.labels[:n], factors, self.label_names, self.source)


def load_images(dataset, split, resolution, num_images, data_dir=None, minimum=None):
    """The first `num_images` images of `split` of `dataset`, in order.

    Args:
        dataset: a TFDS name or an image folder (as for `data.pipeline.build_dataset`).
        split: a split string, e.g. `"test"`.
        resolution: R.
        num_images: n, the most to read.
        data_dir: TFDS data directory.
        minimum: fewer images than this is an error (default `num_images`).

    Returns:
        `Images` (with `factors` when the dataset is `shapes`).
    """
    minimum = num_images if minimum is None else minimum
    if num_images < 1 or minimum > num_images:
        raise ValueError(f"num_images must be positive and at least minimum. "
                         f"Received: num_images={num_images}, minimum={minimum}")
    extra = shapes.FACTOR_NAMES if dataset == "shapes" else ()
    chunk = num_images if num_images <= 2 * _CHUNK else _CHUNK
    ds = pipeline.build_dataset(dataset, split, resolution=resolution, batch_size=chunk,
                                data_dir=data_dir, training=False, extra_features=extra)
    batches = list(ds.take(-(-num_images // chunk)).as_numpy_iterator())
    count = sum(len(b["image"]) for b in batches)
    if count < max(minimum, 1):
        raise ValueError(f"Split {split!r} of {dataset!r} has fewer than {minimum} images "
                         f"(read in batches of {chunk}). Received: num_images={num_images}")

    def join(key):
        return np.concatenate([b[key] for b in batches])[:num_images]

    factors = {name: join(name) for name in extra} or None
    images = join("image")
    return Images(images, join("label").astype(np.int64), factors, _label_names(dataset, data_dir),
                  f"{dataset}:{split}[:{len(images)}]")


def _label_names(dataset, data_dir):
    """The TFDS dataset's class names, or None (image folders, no `label` feature)."""
    if pipeline.is_folder_source(dataset):
        return None
    try:
        builder = pipeline._tfds_builder(dataset, data_dir)  # pylint: disable=protected-access
        return tuple(builder.info.features["label"].names)
    except (KeyError, AttributeError, ValueError):
        return None
