"""Time to a quality bar over several seeds: does a recipe train well on every seed?

A recipe is only as good as its worst seed. For each seed, the demo config (plus the
candidate's overrides) trains with the probe of `quality_driver.py` until the probe meets the
bar or the step budget ends; the bar covers every class and the use of noise, not only the
overall agreement:

- held-out agreement ≥ 0.95 (`agreement`);
- every class's agreement ≥ 0.9 (`worst_class_agreement`; classes by Φ(x)'s top-1);
- every class's ε-diversity ≥ `models.noise_use.THRESHOLD` (`min_epsilon_diversity`):
  the samples of one logit vector differ at least as much as real images of the class that
  differ only in size do.

The probe scores G_ema on 500 held-out images with fixed noise and no standing statistics
(the cheap check a stopping rule can afford); `bin/train`'s final metrics use 2,000 images
and standing statistics. With `reference=True` today's demo config (no overrides) trains
beside the candidate on each seed, in the same invocation.

`summarize(records, bar)` and `markdown(result)` turn probe curves into the table of
`docs/recipes.md`; `python -m logit_inversion.benchmarks.quality_seeds RUN.jsonl...` prints
that table for curves already written (a run's name is its file stem, `NAME_sSEED`).

Example:
    bin/benchmark quality --quality_seeds=0,1,2 \\
        --quality_overrides='{"cpu_bfloat16": "off", "diversity_weight": 1.0}'
"""

import json
import os
import re
import sys
import tempfile
import time

BAR = {"agreement": 0.95, "worst_class_agreement": 0.9, "min_epsilon_diversity": 0.2}
# The float32 matmul peak (GFLOP/s) that training times are scaled to: a 2-core AVX2 VM, the
# slowest kind the demo is meant to finish on in minutes.
REFERENCE_PEAK_GFLOPS = 75.0
DEFAULTS = {"seeds": "0,1,2", "overrides": None, "reference": False, "max_steps": None,
            "probe_every": 100, "num_images": 500, "output_dir": None, "bar": None}


def training_seconds(records, upto):
    """Wall seconds of training up to the probe at step `upto`, the probes' own time taken
    out (a probe's `wall_seconds` counts every probe before it and itself)."""
    record = next(r for r in records if r["step"] == upto)
    probes = sum(r.get("probe_seconds", 0.0) for r in records if r["step"] <= upto)
    return record["wall_seconds"] - probes


def scaled_seconds(seconds, peak_gflops, reference=REFERENCE_PEAK_GFLOPS):
    """`seconds` measured on a CPU whose float32 matmul peak is `peak_gflops`, scaled to one
    whose peak is `reference`: the same fraction of the peak, so the same FLOPs take
    peak/reference times as long."""
    return None if seconds is None else seconds * peak_gflops / reference


def summarize(records, bar=None):
    """One run's row: the first probe that meets `bar` (steps, wall seconds) or None, and
    the last probe's figures."""
    bar = bar or BAR
    met = next((r for r in records
                if all(r.get(k) is not None and r[k] >= v for k, v in bar.items())), None)
    last = records[-1]
    return {"steps_to_bar": met["step"] if met else None,
            "wall_seconds_to_bar": met["wall_seconds"] if met else None,
            "train_seconds_to_bar": training_seconds(records, met["step"]) if met else None,
            "steps": last["step"], "wall_seconds": last["wall_seconds"],
            "agreement": last["agreement"],
            "worst_class_agreement": last.get("worst_class_agreement"),
            "class_agreement": last.get("class_agreement"),
            "min_epsilon_diversity": last.get("min_epsilon_diversity"),
            "meets_bar_at_end": all(last.get(k) is not None and last[k] >= v
                                    for k, v in bar.items())}


def run(args=None):
    """Trains every seed (and, with `reference`, today's demo beside it); returns
    {"bar", "seeds", "candidate": {seed: row}, "reference": {...}, "worst": {...}}."""
    from logit_inversion.benchmarks import quality

    options = {**DEFAULTS, **(args or {})}
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown quality seed options {sorted(unknown)}; known: "
                         f"{sorted(DEFAULTS)}. Received: args={args}")
    try:
        seeds = [int(s) for s in str(options["seeds"]).split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise ValueError("seeds must be comma-separated integers, e.g. 0,1,2. Received: "
                         f"seeds={options['seeds']!r}")
    overrides = dict(options["overrides"] or {})
    if "seed" in overrides:
        raise ValueError("The seed comes from seeds, not from the overrides. Received: "
                         f"overrides={overrides}")
    quality.check_overrides(overrides)
    bar = options["bar"] or BAR
    out = options["output_dir"] or tempfile.mkdtemp(prefix="quality_seeds_")
    os.makedirs(out, exist_ok=True)
    sides = {"candidate": overrides}
    if options["reference"]:
        sides["reference"] = {}
    result = {"bar": bar, "seeds": seeds, "overrides": overrides, "output_dir": out,
              "machine": {"cpus": os.cpu_count(),
                          "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}}
    from logit_inversion.benchmarks.train import matmul_peak
    peaks = [matmul_peak() / 1e9]
    for side, side_overrides in sides.items():
        rows = {}
        for seed in seeds:
            records, _ = quality.train_with_probe(
                quality._ROOT, os.path.join(out, f"{side}_s{seed}.jsonl"),
                overrides={**side_overrides, "seed": seed}, num_steps=options["max_steps"],
                probe_every=options["probe_every"], num_images=options["num_images"],
                targets=bar)
            rows[seed] = summarize(records, bar)
        result[side] = rows
    # The better of the peaks before and after, as `bin/benchmark train` does: a busy
    # machine lowers one of them, and the lower peak would flatter the scaled times.
    peaks.append(matmul_peak() / 1e9)
    peak = max(peaks)
    result["matmul_peak_gflops"] = {"before": peaks[0], "after": peaks[1], "used": peak,
                                    "reference": REFERENCE_PEAK_GFLOPS}
    for side in sides:
        for row in result[side].values():
            row["train_seconds_to_bar_at_reference"] = scaled_seconds(
                row["train_seconds_to_bar"], peak)
        result[f"worst_{side}"] = worst(result[side])
    return result


def worst(rows):
    """The worst seed: the slowest to the bar, or one that never reached it."""
    missed = [seed for seed, row in rows.items() if row["steps_to_bar"] is None]
    if missed:
        return {"seed": missed[0], "reached_bar": False}
    seed = max(rows, key=lambda s: rows[s]["train_seconds_to_bar"])
    keys = ("steps_to_bar", "wall_seconds_to_bar", "train_seconds_to_bar",
            "train_seconds_to_bar_at_reference")
    return {"seed": seed, "reached_bar": True,
            **{k: rows[seed][k] for k in keys if k in rows[seed]}}


def _cell(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(runs, bar=None):
    """A markdown table of {name: summarize(...)} rows, one per run."""
    bar = bar or BAR
    lines = ["| run | steps | wall s | agreement | worst class | ε-diversity (min) "
             "| steps to bar | per class |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in runs.items():
        per_class = " ".join(_cell(a, 2) for a in row["class_agreement"] or [])
        lines.append(
            f"| {name} | {row['steps']} | {row['wall_seconds']:.0f} | {_cell(row['agreement'])} "
            f"| {_cell(row['worst_class_agreement'])} | {_cell(row['min_epsilon_diversity'])} "
            f"| {row['steps_to_bar'] if row['steps_to_bar'] is not None else 'not reached'} "
            f"| {per_class} |")
    return "\n".join(lines)


def table(result):
    """Plain-text summary of `run`'s result."""
    runs = {f"{side} seed {seed}": row for side in ("reference", "candidate")
            for seed, row in result.get(side, {}).items()}
    lines = [markdown(runs, result["bar"])]
    for side in ("reference", "candidate"):
        if f"worst_{side}" in result:
            lines.append(f"worst {side} seed: {json.dumps(result[f'worst_{side}'])}")
    return "\n".join(lines)


def figure(curves, png_path):
    """Three panels (overall agreement, worst class's agreement, least ε-diversity over the
    classes) against the generator step, one line per run; `curves`: {name: records}."""
    import numpy as np

    from logit_inversion import visualize
    from logit_inversion.analysis import render

    steps = sorted({r["step"] for records in curves.values() for r in records})
    labels = [str(s) if i % 2 == 0 else "" for i, s in enumerate(steps)]

    def series(key):
        out = {}
        for name, records in curves.items():
            by_step = {r["step"]: r.get(key) for r in records}
            out[name] = [np.nan if by_step.get(s) is None else by_step[s] for s in steps]
        return out

    panels = [render.line_chart("held-out agreement", labels, series("agreement"), "step", "",
                                size=(330, 200)),
              render.line_chart("worst class's agreement", labels,
                                series("worst_class_agreement"), "step", "", size=(330, 200)),
              render.line_chart("least ε-diversity of a class (bar 0.2)", labels,
                                series("min_epsilon_diversity"), "step", "",
                                y_range=(0.0, 0.6), size=(330, 200))]
    visualize.save_png(render.stack(panels, horizontal=True), png_path)


def grids(grid_files, png_path, scale=2):
    """The probe's held-out originals above each run's reconstructions of them, one row per
    run; `grid_files`: {row label: a `quality_driver` `*_grid*.npz`}. The runs must share
    the originals (same data and probe size), which is checked."""
    import numpy as np

    from logit_inversion import visualize
    from logit_inversion.analysis import render

    rows, labels, originals = [], [], None
    for label, path in grid_files.items():
        with np.load(path) as grid:
            if originals is None:
                originals = grid["originals"]
                rows.append([render.Cell(render.to_pil(x, scale)) for x in originals])
                labels.append("originals")
            elif not np.array_equal(grid["originals"], originals):
                raise ValueError(f"{path} shows other originals than the first grid; "
                                 "rows must reconstruct the same held-out images")
            rows.append([render.Cell(render.to_pil(x, scale)) for x in grid["reconstructions"]])
            labels.append(label)
    visualize.save_png(render.grid(rows, row_labels=labels), png_path)


def _read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    """`RUN.jsonl... [--curves PNG] [--grids PNG]`: prints the table of the runs; with
    `--curves`, draws their probe curves; with `--grids`, each run's last grid (the
    `<stem>_grid.npz` beside its curve) under the shared originals."""
    paths, options = [], {}
    args = iter(argv)
    for arg in args:
        if arg in ("--curves", "--grids"):
            options[arg] = next(args)
        else:
            paths.append(arg)
    curves = {re.sub(r"\.jsonl$", "", os.path.basename(p)): _read(p) for p in paths}
    curves = {name: records for name, records in curves.items() if records}
    runs = {name: summarize(records) for name, records in curves.items()}
    print(markdown(runs))
    if "--curves" in options:
        figure(curves, options["--curves"])
    if "--grids" in options:
        grids({f"{name}\nstep {runs[name]['steps']}": re.sub(r"\.jsonl$", "_grid.npz", path)
               for name, path in zip(curves, (p for p in paths if _read(p)))},
              options["--grids"])
    return runs


if __name__ == "__main__":
    main(sys.argv[1:])
