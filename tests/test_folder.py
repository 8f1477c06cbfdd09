"""Tests for image folders: messy files, labels, splits, the verdict cache, the pipeline."""

import io
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from logit_inversion.data import folder, pipeline

RNG = np.random.default_rng(0)
# Smooth, so that lossy JPEG stays close to it; lossless formats must match it exactly.
_X, _Y = np.meshgrid(np.linspace(0, 255, 60), np.linspace(0, 255, 40))
RGB = np.stack([_X, _Y, 255 - (_X + _Y) / 2], axis=-1).round().astype(np.uint8)
RGBA = np.dstack([RGB, RGB[..., :1]])
GREY16 = RNG.integers(0, 65536, (40, 60), dtype=np.uint16)
RGB16 = RNG.integers(0, 65536, (40, 60, 3), dtype=np.uint16)


def _encode(array_or_image, fmt, **kwargs):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _messy_files():
    """`{name: (bytes, expected verdict, expected RGB or None)}` of the files met in the wild."""
    jpeg = _encode(RGB, "JPEG", quality=95)
    frames = [Image.fromarray(RGB).convert("P"), Image.fromarray(255 - RGB).convert("P")]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    return {
        "rgb.jpg": (jpeg, folder.TF, None),  # lossy: compared loosely below
        "upper.JPEG": (jpeg, folder.TF, None),
        "grey.png": (_encode(RGB[..., 0], "PNG"), folder.TF, np.repeat(RGB[..., :1], 3, -1)),
        "cmyk.jpg": (_encode(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=95), folder.TF, None),
        "rgba.png": (_encode(RGBA, "PNG"), folder.TF, RGB),
        "palette.png": (_encode(Image.fromarray(RGB).convert("P"), "PNG"), folder.TF, None),
        "one_pixel.png": (_encode(RGB[:1, :1], "PNG"), folder.TF, RGB[:1, :1]),
        "grey16.png": (_encode(GREY16, "PNG"), folder.TF, np.repeat((GREY16 >> 8).astype(np.uint8)[..., None], 3, -1)),
        "rgb16.png": (tf.io.encode_png(RGB16).numpy(), folder.TF, (RGB16 >> 8).astype(np.uint8)),
        "rgb.bmp": (_encode(RGB, "BMP"), folder.TF, RGB),
        "grey.bmp": (_encode(RGB[..., 0], "BMP"), folder.TF, np.repeat(RGB[..., :1], 3, -1)),
        "animated.gif": (gif.getvalue(), folder.TF, None),
        "rgb.webp": (_encode(RGB, "WEBP", lossless=True), folder.TF, RGB),
        # TensorFlow refuses RGBA WebP with channels=3; PIL reads it.
        "rgba.webp": (_encode(RGBA, "WEBP", lossless=True, exact=True), folder.PIL, RGB),
        "truncated.jpg": (jpeg[: len(jpeg) * 6 // 10], folder.SKIP, None),
        "text.png": (b"<html>not found</html>", folder.SKIP, None),
        "empty.jpg": (b"", folder.SKIP, None),
    }


def _write(directory, files):
    os.makedirs(directory, exist_ok=True)
    for name, contents in files.items():
        with open(os.path.join(directory, name), "wb") as file:
            file.write(contents)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    path = str(tmp_path / "cache")
    monkeypatch.setenv(folder.CACHE_DIR_ENV, path)
    return path


@pytest.fixture
def messy(tmp_path):
    files = _messy_files()
    directory = str(tmp_path / "messy")
    _write(directory, {name: contents for name, (contents, _, _) in files.items()})
    _write(directory, {"README.txt": b"scraped 2021", ".DS_Store": b"\0"})
    return directory, files


def test_messy_files_are_converted_or_skipped_with_one_warning_each(messy, caplog):
    directory, files = messy
    with caplog.at_level(logging.INFO, logger="absl"):
        index = folder.scan(directory)
    by_name = {os.path.basename(p): pil for p, pil in zip(index.paths, index.use_pil)}
    expected_good = {n: v == folder.PIL for n, (_, v, _) in files.items() if v != folder.SKIP}
    assert by_name == expected_good
    expected_skipped = sorted(os.path.join(directory, n) for n, (_, v, _) in files.items() if v == folder.SKIP)
    assert [path for path, _ in index.skipped] == expected_skipped
    assert index.labels == [-1] * len(index.paths) and index.class_names == []

    lines = [r.getMessage() for r in caplog.records if r.name == "absl"]
    for path in expected_skipped:
        assert sum(path in line for line in lines) == 1, (path, lines)
    reasons = {os.path.basename(p): reason for p, reason in index.skipped}
    assert "truncated" in reasons["truncated.jpg"]
    assert "not a readable image" in reasons["text.png"]
    assert reasons["empty.jpg"] == "empty file"
    count = f"folder {directory}: {len(expected_good)} images, 3 skipped, 1 other files ignored"
    assert lines[-1] == count


def test_decoded_pixels_are_rgb_uint8(messy):
    directory, files = messy
    index = folder.scan(directory)
    for path, use_pil in zip(index.paths, index.use_pil):
        name = os.path.basename(path)
        image = folder.decode({"path": tf.constant(path), "label": tf.constant(-1), "use_pil": tf.constant(use_pil)})["image"]
        assert image.dtype == tf.uint8 and image.shape[-1] == 3, name
        expected = files[name][2]
        if expected is not None:
            np.testing.assert_array_equal(image.numpy(), expected, err_msg=name)
        elif name.endswith((".jpg", ".JPEG")):  # lossy, CMYK round trip included
            assert np.abs(image.numpy().astype(int) - RGB).mean() < 4, name
        else:
            assert image.shape == RGB.shape, name


def test_pil_fallback_keeps_the_top_byte_of_16_bit_images():
    rgb = folder._pil_to_rgb(Image.fromarray(GREY16))  # what an exotic 16-bit file would take
    np.testing.assert_array_equal(rgb, np.repeat((GREY16 >> 8).astype(np.uint8)[..., None], 3, -1))


def test_class_folders_are_labelled_by_sorted_name(tmp_path, caplog):
    jpeg = _encode(RGB, "JPEG")
    _write(tmp_path / "data" / "zebra", {"a.jpg": jpeg, "b.jpg": jpeg})
    _write(tmp_path / "data" / "ant" / "nested", {"c.jpg": jpeg})
    _write(tmp_path / "data", {"stray.jpg": jpeg})
    with caplog.at_level(logging.INFO, logger="absl"):
        index = folder.scan(str(tmp_path / "data"))
    assert index.class_names == ["ant", "zebra"]
    labels = {os.path.basename(p): label for p, label in zip(index.paths, index.labels)}
    assert labels == {"a.jpg": 1, "b.jpg": 1, "c.jpg": 0}
    assert caplog.records[-1].getMessage().endswith(": 3 images, 0 skipped, 1 other files ignored")


def test_missing_and_empty_folders_fail_at_start(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        pipeline.build_dataset(str(tmp_path / "nope"), "train", resolution=8, batch_size=1)
    _write(tmp_path / "notes", {"a.txt": b"x"})
    with pytest.raises(ValueError, match="holds no image files"):
        folder.scan(str(tmp_path / "notes"))
    os.makedirs(tmp_path / "classes" / "cat")
    with pytest.raises(ValueError, match="holds no image files.*class sub-folders"):
        folder.scan(str(tmp_path / "classes"))
    _write(tmp_path / "bad", {"a.jpg": b"", "b.png": b"nope"})
    with pytest.raises(ValueError, match="no readable images"):
        folder.scan(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="is a file"):
        folder.scan(str(tmp_path / "bad" / "a.jpg"))


def test_verdicts_are_cached_until_a_file_changes(messy, monkeypatch):
    directory, _ = messy
    first = folder.scan(directory)
    real_validate = folder._validate
    monkeypatch.setattr(folder, "_validate", lambda paths: pytest.fail(f"revalidated {paths}"))
    assert folder.scan(directory) == first
    _write(directory, {"text.png": _encode(RGB, "PNG")})  # fixed by hand: now readable
    seen = []
    monkeypatch.setattr(folder, "_validate", lambda paths: seen.extend(paths) or real_validate(paths))
    index = folder.scan(directory)
    assert seen == [os.path.join(directory, "text.png")]
    assert len(index.paths) == len(first.paths) + 1 and len(index.skipped) == 2


def test_split_slices_partition_the_folder(tmp_path):
    _write(tmp_path / "flat", {f"{i}.png": _encode(RGB[:4, :4] + i, "PNG") for i in range(10)})
    source = str(tmp_path / "flat")
    paths = lambda split: [r["path"] for r in folder.load(source, split)[0].as_numpy_iterator()]
    head, tail = paths("train[:70%]"), paths("train[70%:]")
    assert len(head) == 7 and len(tail) == 3 and not set(head) & set(tail)
    assert sorted(head + tail) == sorted(paths("train"))
    # Sliced in a fixed shuffled order, not by class: a small slice still has every class.
    _write(tmp_path / "classes" / "a", {f"{i}.png": _encode(RGB[:4, :4], "PNG") for i in range(20)})
    _write(tmp_path / "classes" / "b", {f"{i}.png": _encode(RGB[:4, :4], "PNG") for i in range(20)})
    labels = [r["label"] for r in folder.load(str(tmp_path / "classes"), "train[:25%]")[0].as_numpy_iterator()]
    assert len(labels) == 10 and set(labels) == {0, 1}
    with pytest.raises(ValueError, match="one split, 'train'.*split=test") as error:
        folder.load(source, "test")
    # It names the flags that take a slice.
    assert ("--config.train_split='train[:80%]' --config.eval_split='train[80%:]'"
            in str(error.value))
    with pytest.raises(ValueError, match="extra_features"):
        folder.load(source, "train", extra_features=["shape_hue"])


def test_build_dataset_on_a_class_folder(tmp_path):
    for label, name in enumerate(["a", "b"]):
        _write(tmp_path / "data" / name, {f"{i}.jpg": _encode(RGB[: 20 + i] // (label + 1), "JPEG") for i in range(6)})
    source = f"folder:{tmp_path / 'data'}"
    dataset = pipeline.build_dataset(source, "train", resolution=16, batch_size=4, training=False)
    assert dataset.element_spec["image"].shape == (4, 16, 16, 3)
    batches = list(dataset)
    assert len(batches) == 3  # 12 images, one pass
    labels = np.concatenate([b["label"].numpy() for b in batches])
    assert sorted(labels) == [0] * 6 + [1] * 6
    images = np.concatenate([b["image"].numpy() for b in batches])
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.1

    def image_sums(seed):
        data = pipeline.build_dataset(source, "train", resolution=8, batch_size=4, seed=seed)
        return [float(s) for b in data.take(6) for s in b["image"].numpy().sum(axis=(1, 2, 3))]

    assert image_sums(0) == image_sums(0) and image_sums(0) != image_sums(1)

    shards = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(2, pipeline_id, 2)
        data = pipeline.build_dataset(source, "train", resolution=8, batch_size=6, training=False,
                                      input_context=context)
        shards.append({b.tobytes() for batch in data for b in batch["image"].numpy()})
    assert len(shards[0]) == len(shards[1]) == 6 and not shards[0] & shards[1]


def test_a_file_vanishing_mid_run_costs_one_example(tmp_path):
    _write(tmp_path / "flat", {f"{i}.png": _encode(RGB[:8, :8], "PNG") for i in range(5)})
    dataset = pipeline.build_dataset(str(tmp_path / "flat"), "train", resolution=8, batch_size=1, training=False)
    os.remove(tmp_path / "flat" / "3.png")  # after the start-up scan
    assert len(list(dataset)) == 4


def _with_orientation(array, orientation):
    """JPEG bytes of `array` whose EXIF Orientation tag is `orientation` (1-8)."""
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    return _encode(image, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pil(tmp_path, orientation):
    # A landscape picture with a red top-left corner, stored as phones store portrait shots.
    picture = np.zeros((24, 40, 3), np.uint8)
    picture[:8, :12] = [255, 0, 0]
    contents = _with_orientation(picture, orientation)
    _write(tmp_path / "photos", {"photo.jpg": contents})
    records, decode = folder.load(str(tmp_path / "photos"))
    image = decode(next(iter(records)))["image"].numpy()
    with Image.open(io.BytesIO(contents)) as reference:
        upright = np.asarray(ImageOps.exif_transpose(reference).convert("RGB"))
    assert image.shape == upright.shape == ((24, 40, 3) if orientation <= 4 else (40, 24, 3))
    assert np.abs(image.astype(int) - upright).max() <= 8   # two JPEG decoders
    # The PIL fallback turns the same file upright too.
    assert np.abs(folder._decode_with_pil(str(tmp_path / "photos" / "photo.jpg")).astype(int)
                  - upright).max() == 0


def test_a_held_out_slice_smaller_than_the_grid_is_one_line_before_any_write(
        tmp_path, tiny_classifier_path):
    from logit_inversion import testing, training
    from logit_inversion.training import trainer

    for name in ("a", "b"):   # 20 images: 16 to train on, 4 held out
        _write(tmp_path / "small" / name, {f"{i}.png": _encode(RGB[:8, :8] + i, "PNG")
                                           for i in range(10)})
    config = testing.tiny_config(tiny_classifier_path, None, dataset=str(tmp_path / "small"),
                                 train_split="train[:80%]", eval_split="train[80%:]",
                                 num_images=16)
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        training.train(config, str(workdir), verbose=0)
    message = str(error.value)
    assert "\n" not in message
    assert "holds 4 images" in message and "num_images=16" in message, message
    assert "--config.num_images and --config.eval_examples to at most 4" in message, message
    assert not workdir.exists()
    # A grid and an evaluation batch that fit pass the check.
    config.num_images, config.eval_examples = 4, 4
    trainer._check_eval_split(config, 1)
