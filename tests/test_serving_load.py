"""The export is servable without this package, and holds up under concurrent requests.

There is no TF Serving binary here, so the proof is in three parts: a separate Python process
that never imports `logit_inversion` calls every signature by name with TF Serving's keys;
`saved_model_cli` lists the signatures and runs one through the TF1 session loader (the C++
`SavedModelBundle` path TF Serving uses); and 8 threads send 200 requests each to one loaded
model, which must answer identically for identical requests without its memory growing.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.serving import export, loading
from logit_inversion.benchmarks import serving as serving_benchmark

HERE = Path(__file__).resolve().parent
SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"


@pytest.fixture(scope="module")
def inverter(tiny_inverter):
    return tiny_inverter.inverter


@pytest.fixture(scope="module")
def saved_model(tiny_export):
    """The session's tiny inverter's export (its version folder)."""
    return tiny_export.version


def _run(command, cwd):
    # No PYTHONPATH and a cwd outside the repository: `logit_inversion` is not importable
    # by accident (unless installed, which the subprocess's own check would then catch).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.processes
def test_separate_process_without_the_package_calls_every_signature(saved_model, tmp_path):
    npz = tmp_path / "outputs.npz"
    stdout = _run(
        [sys.executable, str(HERE / "_serving_subprocess.py"), saved_model, str(npz)], tmp_path
    )
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary.pop("imported_logit_inversion") is False
    assert "`images` must be uint8 RGB images" in summary.pop("invalid_argument")
    loaded = loading.load(saved_model)
    r, k, z = loaded.resolution, loaded.num_classes, loaded.noise_dim
    reconstruction = {"reconstructions": ["uint8", [2, r, r, 3]],
                      "logits": ["float32", [2, k]], "noise": ["float32", [2, z]]}
    assert summary == {
        "serving_default": reconstruction,
        "reconstruct": reconstruction,
        "reconstruct_encoded": {"reconstructions_bytes": ["string", [2]],
                                "logits": ["float32", [2, k]]},
        "classify": {"logits": ["float32", [2, k]]},
        "generate": {"images": ["uint8", [2, r, r, 3]]},
    }
    # The other process computed what this one does.
    arrays = np.load(npz)
    images, seed = arrays["inputs/images"], arrays["inputs/seed"]
    here = loaded.reconstruct(images, seed=seed)
    np.testing.assert_array_equal(arrays["reconstruct/reconstructions"], here["reconstructions"])
    np.testing.assert_allclose(arrays["classify/logits"], loaded.classify(images), atol=1e-6)
    np.testing.assert_array_equal(arrays["generate/images"], here["reconstructions"])
    np.testing.assert_array_equal(
        arrays["reconstruct_encoded/reconstructions_bytes"],
        loaded.reconstruct(images, seed=0)["reconstructions"],
    )


@pytest.mark.processes
def test_saved_model_cli_lists_every_signature(saved_model, tmp_path):
    stdout = _run([str(SAVED_MODEL_CLI), "show", "--all", "--dir", saved_model], tmp_path)
    for name in export.SIGNATURES:
        assert f"signature_def['{name}']" in stdout
    for key, dtype in [("images", "DT_UINT8"), ("seed", "DT_INT64"),
                       ("images_bytes", "DT_STRING"), ("logits", "DT_FLOAT"),
                       ("noise", "DT_FLOAT")]:
        assert re.search(rf"inputs\['{key}'\] tensor_info:\s+dtype: {dtype}", stdout), key
    for key in ("reconstructions", "reconstructions_bytes", "images", "logits", "noise"):
        assert f"outputs['{key}']" in stdout
    assert "Method name is: tensorflow/serving/predict" in stdout


@pytest.mark.processes
def test_saved_model_cli_runs_reconstruct_through_the_session_loader(saved_model, tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (2, 20, 28, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "seed.npy", np.array([4, 5], np.int64))
    _run(
        [str(SAVED_MODEL_CLI), "run", "--dir", saved_model, "--tag_set", "serve",
         "--signature_def", "reconstruct",
         "--inputs", f"images={tmp_path / 'images.npy'};seed={tmp_path / 'seed.npy'}",
         "--outdir", str(tmp_path / "out")],
        tmp_path,
    )
    expected = loading.load(saved_model).reconstruct(images, seed=[4, 5])
    for key, value in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{key}.npy"), value)


def _rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise ValueError("Expected a VmRSS line in /proc/self/status. Received: none")


def test_8_threads_x_200_requests(saved_model):
    threads, requests_per_thread = 8, 200
    model = tf.saved_model.load(saved_model)
    reconstruct = model.signatures["reconstruct"]
    encoded = model.signatures["reconstruct_encoded"]
    rng = np.random.default_rng(0)
    images = [tf.constant(rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)) for _ in range(4)]
    pngs = [tf.io.encode_png(image[0])[None] for image in images]
    seeds = [tf.constant([seed], tf.int64) for seed in (0, 1)]

    def request(number):
        """Request `number`: one of 4 images × (2 seeds, or the PNG endpoint)."""
        image, kind = number % 4, (number // 4) % 3
        if kind == 2:
            return (image, "png"), encoded(images_bytes=pngs[image])["reconstructions_bytes"]
        outputs = reconstruct(images=images[image], seed=seeds[kind])
        return (image, kind), outputs["reconstructions"]

    expected = {key: value.numpy() for key, value in map(request, range(12))}  # also warms up
    rss_before = _rss_mb()

    def worker(thread):
        answers = [request(thread * requests_per_thread + i) for i in range(requests_per_thread)]
        return [(key, value.numpy()) for key, value in answers]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = [answer for answers in pool.map(worker, range(threads)) for answer in answers]
    rss_after = _rss_mb()
    print(f"\nVmRSS before {rss_before:.0f} MB, after {len(results)} requests "
          f"{rss_after:.0f} MB (+{rss_after - rss_before:.0f} MB)")
    assert len(results) == threads * requests_per_thread
    for key, value in results:
        if key[1] == "png":
            assert value[0] == expected[key][0], key
        else:
            np.testing.assert_array_equal(value, expected[key], err_msg=str(key))
    assert rss_after - rss_before < 200


def test_benchmark_runs_on_both_sides(inverter, saved_model):
    options = {"batch_size": 4, "latency_requests": 5, "throughput_batches": 2, "warmup_calls": 1}
    results = serving_benchmark.run(inverter, options, export_dir=saved_model)
    for side in ("keras", "savedmodel"):
        assert set(results[side]) == {"p50_ms", "p99_ms", "images_per_second"}
        assert results[side]["images_per_second"] > 0
    assert set(results["overhead_pct"]) == {"p50", "p99", "throughput"}
    assert results["config"]["batch_size"] == 4
    # Given a SavedModel alone, only its side is timed.
    alone = serving_benchmark.run(saved_model, options)
    assert "keras" not in alone and alone["overhead_pct"] is None
    with pytest.raises(ValueError, match="Unknown serving benchmark options"):
        serving_benchmark.run(saved_model, {"batch": 3})


# ---- the Python wrapper refuses what the cast or broadcast would silently change -------------


@pytest.fixture(scope="module")
def loaded(saved_model):
    return loading.load(saved_model)


@pytest.mark.parametrize("images, message", [
    (np.full((1, 8, 8, 3), 0.5, np.float32), "`images` must be uint8 RGB images [batch, height, "
     "width, 3] in [0, 255], not float32: convert explicitly"),
    (np.full((1, 8, 8, 3), 300, np.int64), "`images` must be uint8 pixel values in [0, 255]; "
     "these integers span [300, 300] and would wrap around"),
    (np.full((1, 8, 8, 3), -1, np.int32), "these integers span [-1, -1]"),
])
def test_non_uint8_images_are_refused_not_truncated(loaded, images, message):
    for method in (loaded.classify, loaded.reconstruct):
        with pytest.raises(ValueError) as error:
            method(images)
        assert message in str(error.value) and "\n" not in str(error.value)


def test_integer_images_in_range_are_exact(loaded):
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3))   # int64
    np.testing.assert_array_equal(loaded.classify(images), loaded.classify(images.astype(np.uint8)))


def test_seed_per_image_must_match_the_batch(loaded):
    logits = np.zeros((2, loaded.num_classes), np.float32)
    with pytest.raises(ValueError) as error:
        loaded.generate(logits, seed=[1, 2, 3])
    assert str(error.value) == ("`seed` must be an int or one int per image (2 here). "
                                "Received: seed=[1, 2, 3]")
    with pytest.raises(ValueError, match=r"one int per image \(2 here\)"):
        loaded.reconstruct(np.zeros((2, 8, 8, 3), np.uint8), seed=[1, 2, 3])
    assert loaded.generate(logits, seed=[1, 2]).shape[0] == 2


def test_empty_version_folder_is_a_clear_error(tmp_path):
    model = tmp_path / "model"
    (model / "1").mkdir(parents=True)
    with pytest.raises(ValueError) as error:
        loading.load(str(model))
    assert str(error.value).startswith(
        f"The newest version folder {model / '1'} holds no SavedModel (no saved_model.pb)")
    with pytest.raises(ValueError, match="holds no SavedModel") as error:
        loading.load(str(model / "1"))
    assert "\n" not in str(error.value)
