"""`bin/benchmark quality`: the probe driver trains, scores and stops at its targets; bad
overrides are refused before anything runs."""

import json
import os

import pytest

from logit_inversion.benchmarks import quality


@pytest.fixture(scope="module")
def shapes_120(tmp_path_factory):
    # Identification needs 10 test images per class: a test split larger than conftest's.
    from logit_inversion.data.shapes import build_shapes
    data_dir = str(tmp_path_factory.mktemp("tfds120"))
    build_shapes(data_dir, train_size=64, test_size=120)
    return data_dir


def _overrides(classifier, data_dir):
    return {"classifier": classifier, "data_dir": data_dir, "model.ch": 4,
            "model.noise_dim": 16, "model.embed_dim": 8, "batch_size": 8, "ema_start": 0,
            "preflight.enabled": False, "steps_per_execution": 1}


@pytest.mark.processes
def test_candidate_stops_at_first_probe_meeting_targets(tiny_classifier_path, shapes_120,
                                                        tmp_path):
    out = str(tmp_path / "q")
    result = quality.run({"targets": {"agreement": 0.0, "identification_l2": 0.0},
                          "overrides": _overrides(tiny_classifier_path, shapes_120),
                          "max_steps": 6, "probe_every": 2, "num_images": 120,
                          "output_dir": out})
    curve = result["candidate"]["curve"]
    # Targets of zero are met at the first probe, so training stops there.
    assert [r["step"] for r in curve] == [2]
    assert result["candidate"]["targets_met"] and result["candidate"]["steps"] == 2
    record = curve[0]
    assert 0.0 <= record["agreement"] <= 1.0 and 0.0 <= record["identification_l2"] <= 1.0
    assert record["wall_seconds"] >= record["probe_seconds"] > 0
    assert os.path.getsize(os.path.join(out, "candidate.png")) > 0
    assert os.path.exists(os.path.join(out, "candidate_grid_000002.npz"))  # each probe's
    with open(os.path.join(out, "candidate.jsonl")) as f:
        assert [json.loads(line) for line in f] == curve
    assert "candidate" in quality.table(result)


@pytest.mark.slow
def test_unmet_targets_train_to_the_step_budget(tiny_classifier_path, shapes_120, tmp_path):
    result = quality.run({"targets": {"agreement": 2.0, "identification_l2": 0.0},
                          "overrides": _overrides(tiny_classifier_path, shapes_120),
                          "max_steps": 4, "probe_every": 2, "num_images": 120,
                          "output_dir": str(tmp_path / "q")})
    assert [r["step"] for r in result["candidate"]["curve"]] == [2, 4]
    assert not result["candidate"]["targets_met"] and "speedup" not in result


def test_unknown_override_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="Unknown demo-config key 'model.width'"):
        quality.run({"targets": {"agreement": 0.5}, "overrides": {"model.width": 3},
                     "output_dir": str(tmp_path / "q")})
    assert not os.path.exists(tmp_path / "q")


def test_unknown_reference_commit_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="reference_commit='no-such-commit'"):
        quality.run({"reference_commit": "no-such-commit", "output_dir": str(tmp_path / "q")})
    assert not os.path.exists(tmp_path / "q")


def _grids(tmp_path, steps, originals_seed=0):
    import numpy as np
    originals = np.random.default_rng(originals_seed).uniform(-1, 1, (4, 8, 8, 3))
    rng = np.random.default_rng(1)
    paths = []
    for name, step in steps:
        path = str(tmp_path / f"{name}.npz")
        np.savez(path, originals=originals, reconstructions=rng.uniform(-1, 1, (4, 8, 8, 3)),
                 labels=np.arange(4), step=step)
        paths.append(path)
    return paths


def test_compare_grids_puts_every_side_under_the_same_originals(tmp_path):
    import numpy as np
    from PIL import Image
    paths = _grids(tmp_path, (("reference", 3000), ("candidate", 1000), ("other", 500)))
    one_side = str(tmp_path / "one.png")
    quality.compare_grids([paths[0], paths[0]], one_side, labels=("reference", "candidate"))
    quality.compare_grids(paths[:2], str(tmp_path / "compare.png"),
                          labels=("reference", "candidate"))
    quality.compare_grids(paths, str(tmp_path / "three.png"))
    with Image.open(tmp_path / "compare.png") as image:
        # 3 rows of 4 tiles, 16 px each (8 px at scale 2), with captions and labels.
        assert image.height >= 3 * 16 and image.width >= 4 * 16
        compare = np.asarray(image.convert("RGB"))
    with Image.open(one_side) as image:
        # The candidate row differs from the reference row, so the pictures differ.
        assert image.size == (compare.shape[1], compare.shape[0])
        assert not np.array_equal(np.asarray(image.convert("RGB")), compare)
    with Image.open(tmp_path / "three.png") as image:
        assert image.height > compare.shape[0]   # one more row


def test_compare_grids_refuses_other_originals_and_mismatched_labels(tmp_path):
    paths = _grids(tmp_path, (("a", 1), ("b", 2)))
    (tmp_path / "other").mkdir()
    other = _grids(tmp_path / "other", (("c", 3),), originals_seed=5)
    out = tmp_path / "never.png"
    with pytest.raises(ValueError, match="other originals"):
        quality.compare_grids([paths[0], other[0]], str(out))
    with pytest.raises(ValueError, match="one label per grid"):
        quality.compare_grids(paths, str(out), labels=("only one",))
    assert not out.exists()
