"""Tests for `bin/analyze` and `analysis.runner`: both a workdir and an export work as the
model, every file is written, bad inputs fail with one line before anything is written."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from logit_inversion.analysis import factor_regressor, runner
from logit_inversion.models import noise_use

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(num_images=8, scan_images=16, factor_images=16, seed=0)


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_inverter, tiny_export, shapes_data_dir):
    """The session's tiny untrained inverter as a workdir and as an export, and a tiny factor
    regressor."""
    regressor = tmp_path_factory.mktemp("cli_factors") / "factors"
    factor_regressor.train_regressor(str(regressor), data_dir=shapes_data_dir, epochs=1,
                                     batch_size=64, width=4, dense=8, verbose=0)
    return dict(workdir=tiny_inverter.workdir, export=tiny_export.model_dir,
                version=tiny_export.version,
                regressor=str(regressor), data_dir=shapes_data_dir)


def test_all_experiments_on_a_workdir_write_figures_records_and_page(paths, tmp_path):
    out = tmp_path / "out"
    lines = []
    records = runner.run_analyses(
        [paths["workdir"], paths["export"]], "all", str(out), regressor=paths["regressor"],
        command="bin/analyze --test", log=lines.append, **SMALL)
    assert set(records) == set(runner.EXPERIMENTS)
    for name in runner.EXPERIMENTS:
        with Image.open(out / f"{name}.png") as image:
            assert image.format == "PNG" and image.width > 96 and image.height > 96
        record = json.loads((out / f"{name}.json").read_text())
        assert record["command"] == "bin/analyze --test" and record["seed"] == 0
        assert record["model"][0]["path"] == paths["workdir"]
        assert record["data"].startswith("shapes:test")
        assert record["summary"], name
    # The collapse check ran on both models first: a warning exactly for those below the
    # threshold, and the invariance verdict says "not testable" when the first one is.
    invariance = json.loads((out / "invariance.json").read_text())
    diversity = invariance["epsilon_diversity"]
    assert len(diversity) == 2
    for name, value in diversity.items():
        warned = any(line.startswith(f"warning: {name}: the generator ignores its noise")
                     for line in lines)
        assert warned == noise_use.ignores_noise(value), (name, value, lines)
    first = invariance["model"][0]["name"]
    assert (invariance["summary"]["verdict"] == noise_use.NOT_TESTABLE) == \
        noise_use.ignores_noise(invariance["summary"]["epsilon_diversity"])
    assert invariance["summary"]["epsilon_diversity"] == pytest.approx(diversity[first])
    # One progress line per experiment, with its time, then the page.
    timed = [line for line in lines if re.match(r"\[\d/9\] \w+: [\d.]+ s → ", line)]
    assert len(timed) == 9, lines
    page = (out / "index.html").read_text()
    assert page.count("src='data:image/png;base64,") == 9
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page), "the page must work offline"
    for name in runner.EXPERIMENTS:
        assert f"id='{name}'" in page
        assert runner.MODULES[name].GUIDE.split(" ")[0] in page


@pytest.mark.processes
def test_bin_analyze_on_an_export_version_folder(paths, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO / "bin" / "analyze"), "--model", paths["version"],
         "--experiment", "reconstructions,adversarial", "--output_dir", str(out),
         "--data_dir", paths["data_dir"], "--num_images", "4"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["adversarial.json", "adversarial.png",
                                       "reconstructions.json", "reconstructions.png"]
    record = json.loads((out / "adversarial.json").read_text())
    assert record["model"][0]["kind"] == "export"
    assert record["command"].startswith("bin/analyze --model")
    # An export takes its class names from the dataset when their number matches.
    assert record["model"][0]["class_names"][0] == "circle"


@pytest.mark.parametrize("kwargs, message", [
    (dict(experiments="reconstructions,bogus"), "Received: experiment=reconstructions,bogus"),
    (dict(num_images=0), "Received: num_images=0"),
    (dict(model_paths=["/nonexistent/run"]), "Received: model=/nonexistent/run"),
])
def test_bad_inputs_fail_before_anything_is_written(paths, tmp_path, kwargs, message):
    out = tmp_path / "never"
    arguments = dict(model_paths=[paths["workdir"]], experiments="reconstructions")
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        runner.run_analyses(arguments.pop("model_paths"), arguments.pop("experiments"), str(out),
                            **{**SMALL, **arguments})
    assert not out.exists()


def test_factors_requested_on_a_dataset_without_factors_fails_clearly(paths, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="factors cannot run: .*no ground-truth"):
        runner.run_analyses([paths["workdir"]], "factors", str(out), dataset=_folder(tmp_path),
                            split="train", **SMALL)
    assert not out.exists()


def _folder(tmp_path):
    """A flat folder of a few PNG images (a dataset without labels or factors)."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (40, 40), (20 * i, 100, 200)).save(folder / f"{i}.png")
    return str(folder)
