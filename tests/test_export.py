"""Tests for `export`, `loading`, `bin/export` and the README's loading snippets.

One tiny real inverter (the test config's architecture), exported once for the session
(`tiny_export` in conftest.py).
"""

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.serving import export, loading
from logit_inversion.data import pipeline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tiny_inverter):
    """A training workdir: the tiny config and one checkpoint of its (untrained) inverter."""
    return types.SimpleNamespace(path=tiny_inverter.workdir, inverter=tiny_inverter.inverter)


@pytest.fixture(scope="module")
def exported(tiny_inverter, tiny_export):
    """The inverter exported to `<root>/savedmodels/demo/1`, and the loaded SavedModel."""
    return types.SimpleNamespace(
        root=tiny_export.root, path=tiny_export.version,
        model=tf.saved_model.load(tiny_export.version), inverter=tiny_inverter.inverter
    )


def _images(batch, height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)


def _call(exported, signature, **inputs):
    outputs = exported.model.signatures[signature](
        **{key: tf.convert_to_tensor(value) for key, value in inputs.items()}
    )
    return {key: value.numpy() for key, value in outputs.items()}


# ---- versions -------------------------------------------------------------------------


class _FakeArchive:
    """Stands in for the ExportArchive: writes one file, or fails halfway through."""

    def __init__(self, fail=False):
        self.fail = fail

    def write_out(self, path, verbose=False):
        os.makedirs(path)
        Path(path, "saved_model.pb").write_text("half" if self.fail else "whole")
        if self.fail:
            raise RuntimeError("disk full")


def test_new_export_takes_next_version_and_keeps_older(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "serving_archive", lambda inverter: _FakeArchive())
    (tmp_path / "1").mkdir()
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "saved_model.pb").write_text("old")
    (tmp_path / "notes").mkdir()
    assert export.export_inverter(None, str(tmp_path)) == str(tmp_path / "4")
    assert export.export_inverter(None, str(tmp_path)) == str(tmp_path / "5")
    assert (tmp_path / "3" / "saved_model.pb").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["1", "3", "4", "5", "notes"]


def test_export_into_missing_folder_is_version_1(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "serving_archive", lambda inverter: _FakeArchive())
    output = tmp_path / "savedmodels" / "new"
    assert export.next_version(str(output)) == 1
    assert export.export_inverter(None, str(output)) == str(output / "1")


def test_failed_export_leaves_no_version_and_no_staging(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "serving_archive", lambda inverter: _FakeArchive(fail=True))
    (tmp_path / "1").mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_inverter(None, str(tmp_path))
    assert os.listdir(tmp_path) == ["1"]


def test_version_taken_meanwhile_is_skipped_not_overwritten(tmp_path, monkeypatch):
    # Another export fills version 2 between the listing and the rename.
    monkeypatch.setattr(export, "serving_archive", lambda inverter: _FakeArchive())
    numbers = iter([2, 3])
    monkeypatch.setattr(export, "next_version", lambda output: next(numbers))
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "saved_model.pb").write_text("other")
    assert export.export_inverter(None, str(tmp_path)) == str(tmp_path / "3")
    assert (tmp_path / "2" / "saved_model.pb").read_text() == "other"


def test_unbuilt_generator_is_rejected():
    import keras

    inverter = types.SimpleNamespace(
        classifier=types.SimpleNamespace(built=True), ema_generator=keras.layers.Dense(2)
    )
    with pytest.raises(ValueError, match="ema_generator must be built"):
        export.serving_archive(inverter)


# ---- signatures -------------------------------------------------------------------------


def test_signatures_inputs_and_outputs(exported):
    inverter = exported.inverter
    r, k, z = inverter.resolution, inverter.num_classes, inverter.noise_dim
    expected = {
        "serving_default": ({"images": tf.uint8}, {"reconstructions", "logits", "noise"}),
        "reconstruct": (
            {"images": tf.uint8, "seed": tf.int64},
            {"reconstructions", "logits", "noise"},
        ),
        "reconstruct_encoded": (
            {"images_bytes": tf.string},
            {"reconstructions_bytes", "logits"},
        ),
        "classify": ({"images": tf.uint8}, {"logits"}),
        "generate": ({"logits": tf.float32, "noise": tf.float32}, {"images"}),
        # Differentiable: float images in [-1, 1] at the model's resolution (for attacks).
        "classify_float": ({"images": tf.float32}, {"logits"}),
    }
    assert set(exported.model.signatures) == set(expected)
    for name, (inputs, outputs) in expected.items():
        signature = exported.model.signatures[name]
        specs = signature.structured_input_signature[1]
        assert {key: spec.dtype for key, spec in specs.items()} == inputs, name
        assert set(signature.structured_outputs) == outputs, name
    outputs = exported.model.signatures["reconstruct"].structured_outputs
    assert outputs["reconstructions"].shape.as_list() == [None, r, r, 3]
    assert outputs["logits"].shape.as_list() == [None, k]
    assert outputs["noise"].shape.as_list() == [None, z]


def test_classify_is_the_classifier_on_prepared_images(exported):
    r = exported.inverter.resolution
    images = _images(3, r, r)
    logits = _call(exported, "classify", images=images)["logits"]
    expected = exported.inverter.classifier(images.astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_images_of_any_size_are_cropped_and_resized_like_training_images(exported):
    r = exported.inverter.resolution
    images = _images(2, r + 13, 2 * r + 5)
    prepared = np.stack(
        [pipeline.center_crop_and_resize(tf.constant(image), r).numpy() for image in images]
    )
    expected = exported.inverter.classifier(pipeline.to_model_range(prepared))
    logits = _call(exported, "classify", images=images)["logits"]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_generate_is_the_ema_generator_in_uint8(exported):
    inverter = exported.inverter
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, inverter.num_classes)).astype(np.float32)
    noise = rng.normal(size=(2, inverter.noise_dim)).astype(np.float32)
    images = _call(exported, "generate", logits=logits, noise=noise)["images"]
    expected = (inverter.generate(logits, noise).numpy() + 1.0) * 127.5
    r = inverter.resolution
    assert images.dtype == np.uint8 and images.shape == (2, r, r, 3)
    np.testing.assert_allclose(images, expected, atol=0.51)


def test_reconstruct_is_generate_of_classify_with_noise_from_seeds(exported):
    r = exported.inverter.resolution
    images = _images(2, r, r)
    out = _call(exported, "reconstruct", images=images, seed=np.array([5, 6]))
    np.testing.assert_array_equal(
        out["noise"], export.noise_from_seeds(tf.constant([5, 6], tf.int64), out["noise"].shape[1])
    )
    np.testing.assert_allclose(
        out["logits"], _call(exported, "classify", images=images)["logits"], atol=1e-6
    )
    again = _call(exported, "generate", logits=out["logits"], noise=out["noise"])["images"]
    np.testing.assert_array_equal(out["reconstructions"], again)


def test_seeds_make_requests_repeatable_in_any_batch(exported):
    images = _images(3, 20, 20)
    seeds = np.array([7, 8, 7])
    first = _call(exported, "reconstruct", images=images, seed=seeds)
    second = _call(exported, "reconstruct", images=images, seed=seeds)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    # Image 1 alone, with its seed, is what it was in the batch.
    alone = _call(exported, "reconstruct", images=images[1:2], seed=np.array(8))
    np.testing.assert_array_equal(alone["reconstructions"][0], first["reconstructions"][1])
    # Equal seeds, equal noise; different seeds, different noise.
    np.testing.assert_array_equal(first["noise"][0], first["noise"][2])
    assert not np.array_equal(first["noise"][0], first["noise"][1])
    # A scalar seed is shared by the batch; serving_default is seed 0.
    shared = _call(exported, "reconstruct", images=images, seed=np.array(0))
    default = _call(exported, "serving_default", images=images)
    np.testing.assert_array_equal(shared["noise"], np.repeat(shared["noise"][:1], 3, axis=0))
    np.testing.assert_array_equal(default["reconstructions"], shared["reconstructions"])


def test_reconstruct_encoded_png_and_jpeg_in_png_out(exported):
    r = exported.inverter.resolution
    png_image, jpeg_image = _images(1, r, r)[0], _images(1, 2 * r, 3 * r, seed=1)[0]
    encoded = [tf.io.encode_png(png_image).numpy(), tf.io.encode_jpeg(jpeg_image).numpy()]
    out = _call(exported, "reconstruct_encoded", images_bytes=np.array(encoded, dtype=object))
    pictures = [tf.io.decode_png(data).numpy() for data in out["reconstructions_bytes"]]
    # The same pixels through `serving_default` (also seed 0) give the same reconstructions.
    jpeg_pixels = tf.io.decode_jpeg(encoded[1]).numpy()
    for picture, pixels, logits in zip(pictures, [png_image, jpeg_pixels], out["logits"]):
        expected = _call(exported, "serving_default", images=pixels[None])
        np.testing.assert_array_equal(picture, expected["reconstructions"][0])
        np.testing.assert_allclose(logits, expected["logits"][0], atol=1e-4)


def _float(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize(
    "signature, make_inputs, message",
    [
        ("classify", lambda k, z: {"images": np.zeros((2, 8, 8), np.uint8)},
         r"`images` must be uint8 RGB images \[batch, height, width, 3\].*"
         r"Received shape:\] \[2 8 8\]"),
        ("reconstruct", lambda k, z: {"images": np.zeros((2, 8, 8, 4), np.uint8),
                                      "seed": np.array(0)},
         r"`images` must be uint8 RGB images .*\[2 8 8 4\]"),
        ("serving_default", lambda k, z: {"images": np.zeros((8, 8, 3), np.uint8)},
         r"`images` must be uint8 RGB images"),
        ("reconstruct", lambda k, z: {"images": np.zeros((2, 8, 8, 3), np.uint8),
                                      "seed": np.array([1, 2, 3])},
         r"`seed` must be an int64 scalar or one int64 per image.*\[3\] \[2\]"),
        ("generate", lambda k, z: {"logits": _float(2, k + 1), "noise": _float(2, z)},
         r"`logits` must be float32 classifier logits \[batch, K\]"),
        ("generate", lambda k, z: {"logits": _float(k), "noise": _float(2, z)},
         r"`logits` must be float32 classifier logits \[batch, K\]"),
        ("generate", lambda k, z: {"logits": _float(2, k), "noise": _float(2, z - 1)},
         r"`noise` must be float32 \[batch, Z\]"),
        ("generate", lambda k, z: {"logits": _float(2, k), "noise": _float(3, z)},
         r"`logits` and `noise` must have the same batch size.*\[2\] \[3\]"),
        ("reconstruct_encoded",
         lambda k, z: {"images_bytes": np.array([b"GIF89a", b"hello"], dtype=object)},
         r"must hold encoded JPEG or PNG images; these indices hold neither:\] \[0 1\]"),
        ("reconstruct_encoded",
         lambda k, z: {"images_bytes": np.array(b"\x89PNG\r\n\x1a\n", dtype=object)},
         r"`images_bytes` must be a \[batch\] vector"),
        ("reconstruct_encoded",
         lambda k, z: {"images_bytes": np.array([b"\xff\xd8\xff\xe0broken"], dtype=object)},
         r"Invalid JPEG data"),
    ],
)
def test_malformed_inputs_are_invalid_argument_saying_what_was_expected(
    exported, signature, make_inputs, message
):
    k, z = exported.inverter.num_classes, exported.inverter.noise_dim
    message = message.replace("K", str(k)).replace("Z", str(z))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _call(exported, signature, **make_inputs(k, z))


@pytest.mark.parametrize("bad", ["logits", "noise"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_generate_refuses_nan_and_inf(exported, bad, value):
    k, z = exported.inverter.num_classes, exported.inverter.noise_dim
    inputs = {"logits": _float(3, k), "noise": _float(3, z)}
    inputs[bad][1, 0] = value   # row 1 only
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"`{bad}` must be finite; these rows hold NaN or Inf:\] \[1\]"):
        _call(exported, "generate", **inputs)


def test_an_empty_batch_gives_empty_outputs_in_every_signature(exported):
    k, z = exported.inverter.num_classes, exported.inverter.noise_dim
    r = exported.inverter.resolution
    empty = np.zeros((0, 20, 20, 3), np.uint8)
    expected = {
        "serving_default": ({"images": empty}, {"reconstructions": (0, r, r, 3), "logits": (0, k),
                                               "noise": (0, z)}),
        "reconstruct": ({"images": empty, "seed": np.array(0)},
                        {"reconstructions": (0, r, r, 3), "logits": (0, k), "noise": (0, z)}),
        "reconstruct_encoded": ({"images_bytes": np.zeros((0,), object)},
                                {"reconstructions_bytes": (0,), "logits": (0, k)}),
        "classify": ({"images": empty}, {"logits": (0, k)}),
        "generate": ({"logits": _float(0, k), "noise": _float(0, z)}, {"images": (0, r, r, 3)}),
    }
    for signature, (inputs, shapes) in expected.items():
        outputs = _call(exported, signature, **inputs)
        assert {key: value.shape for key, value in outputs.items()} == shapes, signature


def test_reconstruct_encoded_turns_jpegs_upright_by_exif(exported):
    from PIL import Image, ImageOps
    import io
    rng = np.random.default_rng(4)
    picture = np.repeat(np.repeat(rng.integers(0, 256, (6, 10, 3), np.uint8), 4, 0), 4, 1)
    image = Image.fromarray(picture)
    exif = image.getexif()
    exif[0x0112] = 6   # stored sideways: "rotate 90° clockwise to view"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    contents = buffer.getvalue()
    stored = tf.io.decode_jpeg(contents).numpy()   # TensorFlow ignores the tag
    upright = np.rot90(stored, k=-1)                # what orientation 6 asks for
    pil = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(contents))).convert("RGB"))
    assert stored.shape == (24, 40, 3) and upright.shape == pil.shape == (40, 24, 3)
    assert np.abs(upright.astype(int) - pil).mean() < 3   # PIL agrees (up to its JPEG decoder)
    got = _call(exported, "reconstruct_encoded", images_bytes=np.array([contents], object))
    as_upright = _call(exported, "classify", images=np.ascontiguousarray(upright[None]))["logits"]
    as_stored = _call(exported, "classify", images=stored[None])["logits"]
    assert np.abs(as_upright - as_stored).max() > 1e-3   # the test can tell them apart
    np.testing.assert_allclose(got["logits"], as_upright, atol=1e-4)


# ---- loading ----------------------------------------------------------------------------


def test_load_picks_newest_version_and_mirrors_signatures(exported):
    inverter = loading.load(os.path.dirname(exported.path))
    assert inverter.path == exported.path
    assert (inverter.resolution, inverter.num_classes, inverter.noise_dim) == (
        exported.inverter.resolution, exported.inverter.num_classes, exported.inverter.noise_dim
    )
    images = _images(2, 24, 24)
    out = inverter.reconstruct(images, seed=[3, 4])
    assert out["reconstructions"].dtype == np.uint8
    np.testing.assert_array_equal(
        out["reconstructions"],
        _call(exported, "reconstruct", images=images, seed=np.array([3, 4]))["reconstructions"],
    )
    np.testing.assert_allclose(inverter.classify(tf.constant(images)), out["logits"], atol=1e-6)
    # Without noise, generate draws it from the seed as reconstruct does.
    np.testing.assert_array_equal(
        inverter.generate(out["logits"], seed=[3, 4]), out["reconstructions"]
    )


def test_load_rejects_folders_without_a_model(tmp_path):
    with pytest.raises(ValueError, match="Expected a SavedModel folder"):
        loading.load(str(tmp_path))


def _readme_section():
    """The export section of README.md."""
    text = (REPO / "README.md").read_text()
    if "<!-- export:begin -->" not in text:
        pytest.fail("No export section (<!-- export:begin --> ... <!-- export:end -->) in README.md")
    return text.split("<!-- export:begin -->", 1)[1].split("<!-- export:end -->", 1)[0]


def _python_blocks(section):
    pattern = re.compile(r"(<!-- not run:[^>]*-->\s*)?```python\n(.*?)```", re.DOTALL)
    return [code for skip, code in pattern.findall(section) if not skip]


def test_readme_snippets(exported, monkeypatch):
    # The snippets use the public `logit_inversion.load`: a missing name fails here.
    blocks = _python_blocks(_readme_section())
    assert len(blocks) == 4
    monkeypatch.chdir(exported.root)  # the snippets use savedmodels/demo/1
    namespace = {}
    for number, code in enumerate(blocks):
        exec(compile(code, f"README export block {number}", "exec"), namespace)  # noqa: S102
    r = exported.inverter.resolution
    assert namespace["reconstructions"].shape == (2, r, r, 3)
    assert namespace["images_edited"].shape == (2, r, r, 3)
    # The Keras model built on TFSMLayer computes what `load(...).reconstruct` does.
    expected = namespace["inverter"].reconstruct(namespace["images"], seed=[1, 2])
    # Same graph, other call path: float rounding may move a pixel across a uint8 boundary.
    np.testing.assert_allclose(namespace["reconstructions"].astype(int),
                               expected["reconstructions"].astype(int), atol=1)


# ---- bin/export -------------------------------------------------------------------------


@pytest.mark.processes
def test_bin_export_writes_next_version_and_prints_it(workdir, tmp_path):
    output = tmp_path / "savedmodels" / "demo"
    result = subprocess.run(
        [sys.executable, str(REPO / "bin" / "export"), "--workdir", workdir.path,
         "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(output / "1")
    assert tf.saved_model.contains_saved_model(str(output / "1"))


def test_export_output_that_is_a_file_is_one_line(workdir, tmp_path):
    existing = tmp_path / "model.txt"
    existing.write_text("not a folder")
    for output, where in [(existing, "is a file"), (existing / "sub", "which is a file")]:
        with pytest.raises(ValueError, match=where) as error:
            export.export_inverter(workdir.inverter, str(output))
        assert "\n" not in str(error.value)
    assert existing.read_text() == "not a folder"


@pytest.mark.processes
def test_bin_export_output_that_is_a_file_is_one_line(workdir, tmp_path):
    existing = tmp_path / "model.txt"
    existing.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, str(REPO / "bin" / "export"), "--workdir", workdir.path,
         "--output", str(existing)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"bin/export: error: The export output must be a model folder (created if missing); "
        f"{existing} is a file. Received: output={existing}")
    assert existing.read_text() == "not a folder"
