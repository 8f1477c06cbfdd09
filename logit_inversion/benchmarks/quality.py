"""Time to quality: how long a demo-config inverter takes to match a reference run.

The reference is the demo of an older commit (default 3ceff00, the first shipped demo),
checked out with `git worktree` and trained to its own end by the same driver
(`quality_driver.py`) in the same invocation, so both sides share the machine, the probe and
the metrics. Its final probe sets the targets:
- held-out agreement ≥ reference − `agreement_slack` (0.005);
- same-class instance identification by pixel L2 (N = 9) ≥ the reference's.
The candidate (today's code, today's demo config plus any overrides) trains until its probe
meets both, and the benchmark reports wall time (probes included), steps, CPU use and the
speed-up. Each side leaves a `*_grid.npz` of 16 originals and reconstructions at its last
probe (and one per probe), rendered to PNG, and `compare.png` puts both sides under the same
originals, for the third criterion: the picture, judged by eye.

Example:
    bin/benchmark quality                      # 3ceff00 vs today's demo config
    bin/benchmark quality --quality_targets=agreement=0.9935,identification_l2=0.2
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

DEFAULTS = {"reference_commit": "3ceff00", "probe_every": 100, "num_images": 500,
            "agreement_slack": 0.005, "max_steps": None, "targets": None, "overrides": None,
            "output_dir": None}
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))


def _read_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def train_with_probe(code_root, output, overrides=None, num_steps=None, probe_every=100,
                     num_images=500, targets=None):
    """Runs the driver on `code_root` in a fresh process; returns its probe records."""
    if os.path.exists(output):
        os.remove(output)
    command = [sys.executable, os.path.join(_HERE, "quality_driver.py"),
               "--code_root", code_root,
               "--identification", os.path.join(_ROOT, "logit_inversion", "evaluation",
                                                 "identification.py"),
               "--output", output, "--overrides", json.dumps(overrides or {}),
               "--probe_every", str(probe_every), "--num_images", str(num_images),
               "--targets", json.dumps(targets or {}),
               "--noise_use", os.path.join(_ROOT, "logit_inversion", "models", "noise_use.py")]
    if num_steps:
        command += ["--num_steps", str(num_steps)]
    env = {**os.environ, "PYTHONPATH": os.path.abspath(code_root)}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    records = _read_records(output)
    if not records:
        raise RuntimeError(f"The quality driver wrote no probe records to {output}.")
    return records, time.perf_counter() - start


def _render(npz_path, png_path):
    import numpy as np
    from logit_inversion import visualize
    grid = np.load(npz_path)
    labels = [str(int(i)) for i in grid["labels"]]
    visualize.save_png(visualize.labelled_grid(grid["originals"], grid["reconstructions"],
                                               labels, labels), png_path)


def compare_grids(npz_paths, png_path, labels=None):
    """One PNG of the same originals above each grid's reconstructions, one row per path:
    the by-eye check, at equal images and noise. `labels` names the rows (default: the
    file stems). Raises ValueError, before writing, when the grids' originals differ."""
    import numpy as np
    from logit_inversion import visualize
    from logit_inversion.analysis import render
    if len(npz_paths) < 1:
        raise ValueError(f"compare_grids needs at least one grid. Received: npz_paths={npz_paths}")
    labels = list(labels) if labels is not None else [
        os.path.splitext(os.path.basename(path))[0] for path in npz_paths]
    if len(labels) != len(npz_paths):
        raise ValueError(f"compare_grids needs one label per grid; got {len(labels)} labels for "
                         f"{len(npz_paths)} grids. Received: labels={labels}")
    sides = [np.load(path) for path in npz_paths]
    for path, side in zip(npz_paths[1:], sides[1:]):
        if not np.array_equal(side["originals"], sides[0]["originals"]):
            raise ValueError(f"{path} shows other originals than {npz_paths[0]}; rows are "
                             f"comparable only under the same images. Received: {path}")

    def row(images, captions=None):
        return [render.Cell(render.to_pil(image, scale=2), caption=caption)
                for image, caption in zip(images, captions or [""] * len(images))]

    rows = [row(sides[0]["originals"], [str(int(label)) for label in sides[0]["labels"]])]
    rows += [row(side["reconstructions"]) for side in sides]
    names = ["originals"] + [f"{name}\nstep {int(side['step'])}"
                             for name, side in zip(labels, sides)]
    visualize.save_png(render.grid(rows, row_labels=names), png_path)


def check_commit(commit):
    """Raises ValueError unless `commit` names a commit of this checkout."""
    found = subprocess.run(["git", "-C", _ROOT, "rev-parse", "--verify", "--quiet",
                            f"{commit}^{{commit}}"], capture_output=True)
    if found.returncode:
        raise ValueError(f"The reference commit is not in this git checkout ({_ROOT}); give "
                         f"a commit hash or tag, or --quality_targets. Received: "
                         f"reference_commit={commit!r}")


def _worktree(commit):
    path = tempfile.mkdtemp(prefix=f"logit_inversion_{commit}_")
    os.rmdir(path)
    subprocess.run(["git", "-C", _ROOT, "worktree", "add", "--detach", path, commit],
                   check=True, capture_output=True)
    # The reference trains with its own commit's shipped classifier (`savedmodels/` is
    # committed), so both sides invert the same `shapes` CNN only if it did not change.
    return path


def _remove_worktree(path):
    subprocess.run(["git", "-C", _ROOT, "worktree", "remove", "--force", path],
                   capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _summary(records, seconds, stop_index=None):
    index = len(records) - 1 if stop_index is None else stop_index
    last = records[index]
    return {"steps": last["step"], "wall_seconds": last["wall_seconds"],
            "process_seconds": round(seconds, 1),
            "probe_seconds_total": round(sum(r["probe_seconds"] for r in records[:index + 1]), 2),
            "cpu_percent": round(100 * last["cpu_seconds"] / max(last["wall_seconds"], 1e-9), 1),
            "agreement": last["agreement"], "identification_l2": last["identification_l2"]}


def check_overrides(overrides):
    """Raises ValueError naming the first key of `overrides` that the demo config lacks."""
    from logit_inversion.configs import demo
    config = demo.get_config()
    for key in overrides or {}:
        node = config
        for part in key.split("."):
            if not hasattr(node, "keys") or part not in node:
                raise ValueError(f"Unknown demo-config key {key!r} in the quality overrides. "
                                 f"Received: overrides={overrides}")
            node = node[part]


def run(args=None):
    """`bin/benchmark quality`. Returns {"reference", "candidate", "targets", "speedup", …}."""
    options = {**DEFAULTS, **(args or {})}
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown quality benchmark options {sorted(unknown)}; known: "
                         f"{sorted(DEFAULTS)}. Received: args={args}")
    check_overrides(options["overrides"])
    if options["targets"] is None:
        check_commit(options["reference_commit"])
    out = options["output_dir"] or tempfile.mkdtemp(prefix="quality_")
    os.makedirs(out, exist_ok=True)
    result = {"machine": {"cpus": os.cpu_count(), "load_average_before": list(os.getloadavg()),
                          "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())},
              "probe": {"every": options["probe_every"], "num_images": options["num_images"],
                        "noise": "fixed", "statistics": "EMA (no standing statistics)"},
              "output_dir": out}
    targets = options["targets"]
    if targets is None:
        commit = options["reference_commit"]
        tree = _worktree(commit)
        try:
            records, seconds = train_with_probe(
                tree, os.path.join(out, "reference.jsonl"),
                probe_every=options["probe_every"], num_images=options["num_images"])
        finally:
            _remove_worktree(tree)
        result["reference"] = {"commit": commit, **_summary(records, seconds),
                               "curve": records}
        _render(os.path.join(out, "reference_grid.npz"), os.path.join(out, "reference.png"))
        targets = {"agreement": records[-1]["agreement"] - options["agreement_slack"],
                   "identification_l2": records[-1]["identification_l2"]}
    result["targets"] = targets
    records, seconds = train_with_probe(
        _ROOT, os.path.join(out, "candidate.jsonl"), overrides=options["overrides"],
        num_steps=options["max_steps"] or (result.get("reference", {}).get("steps")),
        probe_every=options["probe_every"], num_images=options["num_images"], targets=targets)
    met = [i for i, r in enumerate(records) if r.get("targets_met")]
    result["candidate"] = {"overrides": options["overrides"] or {}, "targets_met": bool(met),
                           **_summary(records, seconds, met[0] if met else None),
                           "curve": records}
    _render(os.path.join(out, "candidate_grid.npz"), os.path.join(out, "candidate.png"))
    if "reference" in result:
        compare_grids([os.path.join(out, "reference_grid.npz"),
                       os.path.join(out, "candidate_grid.npz")],
                      os.path.join(out, "compare.png"), labels=("reference", "candidate"))
    if met and "reference" in result:
        result["speedup"] = round(result["reference"]["wall_seconds"]
                                  / result["candidate"]["wall_seconds"], 2)
    result["machine"]["load_average_after"] = list(os.getloadavg())
    return result


def table(result):
    rows = ["side        steps   wall s  probes s   CPU %  agreement  ident. L2"]
    for side in ("reference", "candidate"):
        if side in result:
            r = result[side]
            rows.append(f"{side:<10} {r['steps']:>6} {r['wall_seconds']:>8.1f} "
                        f"{r['probe_seconds_total']:>9.1f} {r['cpu_percent']:>7.1f} "
                        f"{r['agreement']:>10.4f} {r['identification_l2']:>10.3f}")
    targets = ", ".join(f"{k} ≥ {v:.4f}" for k, v in result["targets"].items())
    rows.append(f"targets: {targets}; speed-up {result.get('speedup', 'n/a')}×")
    return "\n".join(rows)
