"""`bin/reproduce`: the dry run lists every stage and writes nothing; a run skips finished
stages, runs the rest and records their times; unknown stage names are refused."""

import json
import os
import subprocess
import sys

import pytest

from logit_inversion.reproduction import stages

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.processes
def test_dry_run_lists_every_stage_and_writes_nothing(tmp_path):
    root = tmp_path / "reproduce"
    done = subprocess.run([sys.executable, os.path.join(_ROOT, "bin", "reproduce"),
                           "--dry_run", f"--root={root}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for stage in stages.stages(str(root)):
        # The CIFAR-10 inverters are shipped, so their export stages are done on a clone (as
        # are the controls' once theirs are shipped); nothing else is.
        shipped = stage.name.startswith("export_") or (
            stage.name.startswith("control_") and stage.done())
        status = "done" if shipped else "to run"
        assert f"{stage.name} [{status}]" in done.stdout
        for path in stage.outputs:
            assert f"→ {path}" in done.stdout
    assert "bin/train --config=logit_inversion/configs/cifar10_cpu.py" in done.stdout
    assert not root.exists()


def test_run_skips_finished_stages_and_records_times(tmp_path):
    root = str(tmp_path)
    finished, missing = tmp_path / "a.txt", tmp_path / "b.txt"
    finished.write_text("old")

    def write(path):
        return [sys.executable, "-c", f"open({str(path)!r}, 'w').write('new')"]

    plan = [stages.Stage("a", "already done", [write(finished)], [str(finished)]),
            stages.Stage("b", "to do", [write(missing)], [str(missing)])]
    records = stages.run(plan, root, log=lambda line: None)
    assert [r["status"] for r in records] == ["skipped", "ran"]
    assert finished.read_text() == "old" and missing.read_text() == "new"
    with open(tmp_path / "stages.json") as f:
        history = json.load(f)
    assert [r["stage"] for r in history] == ["b"] and history[0]["seconds"] >= 0
    assert history[0]["machine"].startswith(f"{os.cpu_count()} × ")
    assert [r["status"] for r in stages.run(plan, root, log=lambda line: None)] == [
        "skipped", "skipped"]


def test_only_selects_by_prefix_and_refuses_unknown_names():
    all_stages = stages.stages("r")
    chosen = stages.select(all_stages, "invert_cifar10")
    assert [s.name for s in chosen] == ["invert_cifar10_standard", "invert_cifar10_robust",
                                        "invert_cifar10_standard_hinge",
                                        "invert_cifar10_robust_hinge"]
    # A full name selects that stage alone, not the stages it is a prefix of.
    assert [s.name for s in stages.select(all_stages, "invert_cifar10_robust")] == [
        "invert_cifar10_robust"]
    with pytest.raises(ValueError, match="Received: only='invert_mnist'"):
        stages.select(all_stages, "invert_mnist")


def test_a_failing_stage_stops_with_its_name_and_records_nothing(tmp_path):
    plan = [stages.Stage("broken", "fails", [[sys.executable, "-c", "raise SystemExit(3)"]],
                         [str(tmp_path / "never")])]
    with pytest.raises(RuntimeError, match="stage broken failed: exit status 3"):
        stages.run(plan, str(tmp_path), log=lambda line: None)
    assert not (tmp_path / "stages.json").exists()


def test_ship_metadata_names_the_training_command(tmp_path):
    from logit_inversion.reproduction import ship
    workdir, root = tmp_path / "inv", tmp_path / "root"
    workdir.mkdir()
    root.mkdir()
    with pytest.raises(ValueError, match="has no metrics.json"):
        ship.metadata(str(workdir))
    (workdir / "metrics.json").write_text(json.dumps({"steps": 12, "agreement": 0.5}))
    (workdir / "config.json").write_text(json.dumps({"batch_size": 64, "num_steps": 12}))
    (root / "stages.json").write_text(json.dumps([
        {"stage": "invert_x", "seconds": 9.0, "commands": ["bin/train --old"]},
        {"stage": "invert_x", "seconds": 3.0, "commands": ["bin/train --new"]}]))
    data = ship.metadata(str(workdir), str(root), "invert_x", "bin/export --workdir=inv")
    assert data["command"] == "bin/train --new" and data["wall_seconds"] == 3.0
    assert ship.portable("/venv/bin/python3 bin/train --workdir=/repo/runs/x", "/repo") == (
        "python bin/train --workdir=runs/x")
    assert data["steps"] == 12 and data["agreement"] == 0.5
    assert data["config"] == {"batch_size": 64, "num_steps": 12}
    assert data["export_command"] == "bin/export --workdir=inv"
