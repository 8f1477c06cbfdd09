"""The CIFAR-10 inverters shipped in `savedmodels/`: each says how it was made, embeds the
classifier it claims to invert, and `bin/evaluate` and `bin/analyze` run on it offline."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import logit_inversion
from logit_inversion.classifiers import frozen

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ["cifar10_standard", "cifar10_robust"]


def _images(count=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_inverter_says_how_it_was_made(name):
    folder = REPO / "savedmodels" / f"inverter_{name}"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["classifier"] == name and metadata["dataset"] == "cifar10"
    assert metadata["command"].startswith("python bin/train ")
    assert f"--config.classifier={name}" in metadata["command"]
    assert str(REPO) not in json.dumps(metadata), "paths in metadata are relative to the repo"
    assert metadata["steps"] == metadata["config"]["num_steps"] > 0
    assert 0.0 <= metadata["agreement"] <= 1.0 and metadata["wall_seconds"] > 0
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 8 * 2**20, f"{folder} is {size / 2**20:.1f} MB; shipped models stay small"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_inverter_was_trained_with_todays_cifar_recipe(name):
    """A recipe change in `configs/cifar10_cpu.py` must come with retrained inverters (the
    reproduction's CIFAR-10 stages), or the shipped ones no longer show what it gives."""
    from logit_inversion.configs import cifar10_cpu
    config = cifar10_cpu.get_config()
    recorded = json.loads((REPO / "savedmodels" / f"inverter_{name}" / "metadata.json")
                          .read_text())["config"]
    for key in ("batch_size", "num_steps", "consistency_weight", "diversity_weight", "g_lr",
                "d_lr", "ema_decay"):
        assert recorded.get(key) == config[key], (key, recorded.get(key), config[key])
    assert recorded["model"] == json.loads(json.dumps(config.model.to_dict()))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_inverter_embeds_its_classifier(name):
    inverter = logit_inversion.load(str(REPO / "savedmodels" / f"inverter_{name}"))
    assert (inverter.resolution, inverter.num_classes) == (32, 10)
    images = _images()
    out = inverter.reconstruct(images, seed=3)
    assert out["reconstructions"].shape == (6, 32, 32, 3)
    assert out["reconstructions"].dtype == np.uint8 and out["reconstructions"].std() > 0
    classifier = frozen.load_classifier(name)
    expected = classifier(images.astype(np.float32) / 127.5 - 1.0).numpy()
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-3, atol=1e-3)


# Both commands on an export run on every CI run on the tiny inverter (test_analysis_cli.py,
# test_noise_convention.py, test_baselines.py); here on a shipped one, two processes' worth.
@pytest.mark.slow
def test_evaluate_and_analyze_run_on_a_shipped_inverter(tmp_path):
    folder = tmp_path / "pictures"
    for label in ("airplane", "cat"):
        (folder / label).mkdir(parents=True)
        for i, pixels in enumerate(_images(4, seed=len(label))):
            Image.fromarray(pixels).save(folder / label / f"{i}.png")
    model = str(REPO / "savedmodels" / "inverter_cifar10_robust")
    evaluated = subprocess.run(
        [sys.executable, str(REPO / "bin" / "evaluate"), f"--model={model}",
         f"--dataset={folder}", "--split=train", "--num_images=8", "--num_distractors=3",
         "--diversity_images=2", f"--output={tmp_path / 'evaluation'}"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert metrics["num_images"] == 8 and len(metrics["models"]) == 1
    analyzed = subprocess.run(
        [sys.executable, str(REPO / "bin" / "analyze"), f"--model={model}",
         "--experiment=reconstructions,invariance", f"--dataset={folder}", "--split=train",
         "--num_images=4", f"--output_dir={tmp_path / 'analysis'}"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]
    assert (tmp_path / "analysis" / "invariance.png").exists()


def test_model_metadata_is_read_from_the_model_folder_or_beside_a_version(tmp_path):
    from logit_inversion.serving import loading
    (tmp_path / "m" / "3").mkdir(parents=True)
    assert loading.model_metadata(tmp_path / "m") == {}
    (tmp_path / "m" / "metadata.json").write_text(json.dumps({"classifier": "shapes"}))
    assert loading.model_metadata(tmp_path / "m")["classifier"] == "shapes"
    assert loading.model_metadata(str(tmp_path / "m" / "3") + "/")["classifier"] == "shapes"


# The controls of the factor audit: the folder is named after the classifier's folder.
CONTROLS = [("shapes_cnn", "shapes", 6), ("shapes_quadrant", "shapes_quadrant", 24)]


@pytest.mark.parametrize("folder_name,classifier,num_classes", CONTROLS)
def test_shipped_control_inverters_invert_their_classifier(folder_name, classifier, num_classes):
    folder = REPO / "savedmodels" / f"inverter_{folder_name}"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["classifier"] == classifier and metadata["dataset"] == "shapes"
    assert f"--config.classifier={classifier} " in metadata["command"] + " "
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 8 * 2**20, f"{folder} is {size / 2**20:.1f} MB; shipped models stay small"
    inverter = logit_inversion.load(str(folder))
    assert (inverter.resolution, inverter.num_classes) == (32, num_classes)
    images = _images()
    out = inverter.reconstruct(images, seed=3)
    expected = frozen.load_classifier(classifier)(images.astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_allclose(out["logits"], expected.numpy(), rtol=1e-3, atol=1e-3)
