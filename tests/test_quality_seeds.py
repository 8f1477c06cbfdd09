"""The multi-seed quality bar: every class and noise use count, and the worst seed decides."""

import pytest

from logit_inversion.benchmarks import quality_seeds


def _record(step, agreement, worst, diversity, wall=None):
    return {"step": step, "wall_seconds": wall or step / 2.0, "agreement": agreement,
            "worst_class_agreement": worst, "class_agreement": [worst, agreement],
            "min_epsilon_diversity": diversity}


def test_the_bar_needs_every_class_and_noise_use():
    curve = [_record(100, 0.99, 0.5, 0.4),    # one class fails
             _record(200, 0.99, 0.95, 0.1),   # the generator ignores its noise
             _record(300, 0.97, 0.92, 0.3),   # meets the bar
             _record(400, 0.99, 0.2, 0.3)]    # and loses it again
    row = quality_seeds.summarize(curve)
    assert row["steps_to_bar"] == 300 and row["wall_seconds_to_bar"] == 150.0
    assert row["steps"] == 400 and not row["meets_bar_at_end"]


def test_time_to_bar_leaves_out_the_probes_and_scales_by_the_peak():
    curve = [dict(_record(100, 0.5, 0.1, 0.4, wall=12.0), probe_seconds=2.0),
             dict(_record(200, 0.97, 0.92, 0.3, wall=25.0), probe_seconds=3.0)]
    row = quality_seeds.summarize(curve)
    # 25 s on the clock at the probe that met the bar, 2 + 3 s of it spent probing.
    assert row["wall_seconds_to_bar"] == 25.0 and row["train_seconds_to_bar"] == 20.0
    # Twice the reference's peak: the same FLOPs at the same fraction take twice as long.
    assert quality_seeds.scaled_seconds(20.0, 2 * quality_seeds.REFERENCE_PEAK_GFLOPS) == 40.0
    assert quality_seeds.scaled_seconds(None, 150.0) is None


def test_the_worst_seed_is_one_that_never_reached_the_bar():
    reached = quality_seeds.summarize([_record(300, 0.99, 0.95, 0.3)])
    slower = quality_seeds.summarize([_record(500, 0.99, 0.95, 0.3)])
    never = quality_seeds.summarize([_record(1600, 0.8, 0.0, 0.05)])
    assert quality_seeds.worst({0: reached, 1: slower})["seed"] == 1
    assert quality_seeds.worst({0: reached, 1: never, 2: slower}) == {
        "seed": 1, "reached_bar": False}
    assert "not reached" in quality_seeds.markdown({"x_s1": never})


def test_bad_seeds_and_a_seed_override_are_refused_before_training():
    with pytest.raises(ValueError, match="Received: seeds='a,b'"):
        quality_seeds.run({"seeds": "a,b"})
    with pytest.raises(ValueError, match="seed comes from seeds"):
        quality_seeds.run({"seeds": "0", "overrides": {"seed": 3}})


def test_the_command_line_writes_the_table_curves_and_grids(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    originals = np.zeros((3, 8, 8, 3), np.float32)
    for name, value in (("a_s0", 0.5), ("b_s1", -0.5)):
        with open(tmp_path / f"{name}.jsonl", "w") as f:
            f.write(json.dumps(_record(200, 0.97, 0.93, 0.4)) + "\n")
        np.savez(tmp_path / f"{name}_grid.npz", originals=originals,
                 reconstructions=np.full_like(originals, value), labels=np.arange(3), step=200)
    runs = quality_seeds.main([str(tmp_path / "a_s0.jsonl"), str(tmp_path / "b_s1.jsonl"),
                               "--curves", str(tmp_path / "c.png"),
                               "--grids", str(tmp_path / "g.png")])
    assert set(runs) == {"a_s0", "b_s1"} and runs["b_s1"]["steps_to_bar"] == 200
    assert "| b_s1 | 200 |" in capsys.readouterr().out
    # Three rows of tiles (originals and two runs), each run's reconstructions distinct.
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert Image.open(tmp_path / "c.png").width > 300 and grid.shape[0] > 3 * 16
    np.savez(tmp_path / "b_s1_grid.npz", originals=originals + 1, reconstructions=originals,
             labels=np.arange(3), step=200)
    with pytest.raises(ValueError, match="other originals"):
        quality_seeds.main([str(tmp_path / "a_s0.jsonl"), str(tmp_path / "b_s1.jsonl"),
                            "--grids", str(tmp_path / "g.png")])
