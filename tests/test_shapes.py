"""Tests for the generated `shapes` dataset and its renderer."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from logit_inversion.data import shapes


def _factors(n, **overrides):
    factors = {
        "shape_hue": np.full(n, 0.0),
        "background_hue": np.full(n, 0.5),
        "position_x": np.full(n, 16.0),
        "position_y": np.full(n, 16.0),
        "scale": np.full(n, 10.0),
        "rotation": np.zeros(n),
    }
    factors.update({k: np.broadcast_to(v, (n,)) for k, v in overrides.items()})
    return factors


def test_generate_split_is_deterministic():
    a = shapes.generate_split(seed=3, n=50)
    b = shapes.generate_split(seed=3, n=50)
    c = shapes.generate_split(seed=4, n=50)
    assert a[2].tobytes() == b[2].tobytes() and np.array_equal(a[0], b[0])
    assert a[2].tobytes() != c[2].tobytes()


def test_factor_ranges_and_classes():
    labels, factors, images = shapes.generate_split(seed=0, n=600)
    assert images.shape == (600, 32, 32, 3) and images.dtype == np.uint8
    assert set(labels) == set(range(6))
    assert set(factors) == set(shapes.FACTOR_NAMES)
    for name, value in factors.items():
        assert value.dtype == np.float32 and value.shape == (600,), name
    for name in ["shape_hue", "background_hue"]:
        assert factors[name].min() >= 0.0 and factors[name].max() < 1.0
    for name in ["position_x", "position_y"]:
        assert factors[name].min() >= 11.0 and factors[name].max() <= 21.0
    assert factors["scale"].min() >= 7.0 and factors["scale"].max() <= 11.0
    assert factors["rotation"].min() >= 0.0 and factors["rotation"].max() < 2 * np.pi
    # Shape and background hues are always far apart on the colour wheel.
    gap = np.abs(factors["shape_hue"] - factors["background_hue"])
    assert np.minimum(gap, 1.0 - gap).min() >= 0.25 - 1e-6


def test_colours_and_antialiasing():
    images = shapes.render_shapes([0, 4], **_factors(2))  # red circle, red ring on cyan-ish
    centre, corner = images[:, 16, 16], images[:, 0, 0]
    np.testing.assert_array_equal(centre[0], [255, 0, 0])  # bright saturated shape
    np.testing.assert_array_equal(centre[1], corner[1])  # the ring's hole shows background
    assert corner[0].max() < 100  # dark, dull background
    # Anti-aliasing: edge pixels mix the two colours.
    assert len(np.unique(images[0].reshape(-1, 3), axis=0)) > 5


def test_classes_differ_and_symmetries_hold():
    images = shapes.render_shapes(np.arange(6), **_factors(6)).astype(int)
    for i in range(6):
        for j in range(i):
            assert np.abs(images[i] - images[j]).mean() > 2.0, (i, j)
    # Rotating by a shape's symmetry angle leaves it unchanged (up to edge rounding).
    for label, angle in [(0, 1.0), (1, np.pi / 2), (2, 2 * np.pi / 3), (3, np.pi / 2), (5, 2 * np.pi / 5)]:
        base = shapes.render_shapes([label], **_factors(1)).astype(int)
        turned = shapes.render_shapes([label], **_factors(1, rotation=angle)).astype(int)
        assert np.abs(base - turned).max() <= 3, label
    # ...and a non-symmetric angle changes the square.
    turned = shapes.render_shapes([1], **_factors(1, rotation=np.pi / 4)).astype(int)
    assert np.abs(images[1] - turned).mean() > 2.0


def test_position_moves_the_shape():
    left = shapes.render_shapes([0], **_factors(1, position_x=11.0, scale=7.0))[0]
    right = shapes.render_shapes([0], **_factors(1, position_x=21.0, scale=7.0))[0]
    red_columns = lambda image: np.where(image[..., 0].max(axis=0) > 128)[0]
    assert red_columns(left).mean() == pytest.approx(11.0 - 0.5, abs=0.6)
    assert red_columns(right).mean() == pytest.approx(21.0 - 0.5, abs=0.6)


def test_resolution_independent_factors():
    factors = _factors(1, rotation=0.3)
    small = shapes.render_shapes([5], **factors).astype(float)
    large = shapes.render_shapes([5], **factors, size=64).astype(float)
    pooled = large.reshape(1, 32, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(small - pooled).mean() < 2.0


def test_render_validates_inputs():
    with pytest.raises(ValueError, match="labels"):
        shapes.render_shapes([6], **_factors(1))
    with pytest.raises(ValueError, match="scale"):
        shapes.render_shapes([0, 1], **{**_factors(2), "scale": [1.0]})


def test_tfds_build_and_load(tmp_path):
    builder = shapes.build_shapes(tmp_path / "a", train_size=24, test_size=12)
    assert builder.info.splits["train"].num_examples == 24
    assert builder.info.features["label"].names == list(shapes.CLASS_NAMES)
    # `tfds.load` finds the builder by name after the import, and reads the generated files.
    test = list(tfds.as_numpy(tfds.load("shapes", data_dir=tmp_path / "a", split="test")))
    assert len(test) == 12
    example = test[0]
    assert example["image"].shape == (32, 32, 3) and example["image"].dtype == np.uint8
    assert {name: example[name].dtype for name in shapes.FACTOR_NAMES} == {
        name: np.float32 for name in shapes.FACTOR_NAMES
    }
    # The stored image is exactly the one `render_shapes` gives for its label and factors.
    factors = {name: [example[name]] for name in shapes.FACTOR_NAMES}
    np.testing.assert_array_equal(example["image"], shapes.render_shapes([example["label"]], **factors)[0])

    # A second build in another directory gives the same examples in the same order.
    shapes.build_shapes(tmp_path / "b", train_size=24, test_size=12)
    again = list(tfds.as_numpy(tfds.load("shapes", data_dir=tmp_path / "b", split="test")))
    assert [e["image"].tobytes() for e in test] == [e["image"].tobytes() for e in again]
    assert [e["label"] for e in test] == [e["label"] for e in again]
