"""Experiment 3, manipulations: edit the logits, keep the noise, see what the picture does.

Three sweeps, each a row of the figure:
- shift: z + c (softmax ignores it; the generator need not);
- scale: z · s (confidence: s < 1 flattens the softmax, s > 1 sharpens it);
- Gaussian perturbation: z + σ·n, n ~ N(0, I) fixed per image.

Shifts and σ are in units of ŝ, the mean per-image std of the logits, so the sweeps suit any
classifier. Numbers per value: mean pixel change from the unmanipulated reconstruction (same
ε), mean brightness and contrast, and top-1 agreement with the original's class. The identity
values (c = 0, s = 1, σ = 0) reproduce the base reconstruction exactly.

For the paper's claims (c) (shift and scale change contrast and sharpness) and (d) (a
perturbation changes a robust classifier's picture moderately, a standard one's
dramatically), each value also carries the change of contrast and of sharpness from the base
reconstruction, the class change rate (Φ's top-1 on the edited reconstruction against that on
the unedited one), and bootstrap 95 % intervals over images (Wilson for the rate); the summary gives, per sweep, the pixel change per unit of the sweep (a
least-squares slope through the identity, per image) with its interval.
"""

import numpy as np

from logit_inversion.analysis import common, render, stats

TITLE = "Logit manipulations (same noise ε)"
GUIDE = ("Each row edits the logits of one image (shift z+c, scale z·s, noise z+σn; c and σ in "
         "units of ŝ, the mean logit std) with the noise fixed; the marked column is the "
         "unedited reconstruction.")
SHIFTS = (-2.0, -1.0, 0.0, 1.0, 2.0)
SCALES = (0.0, 0.5, 1.0, 2.0, 4.0)
SIGMAS = (0.0, 0.5, 1.0, 2.0, 4.0)
IDENTITY = {"shift": 0.0, "scale": 1.0, "gaussian": 0.0}


def manipulate(logits, sweep, value, unit, perturbation):
    """The edited logits `[B, K]` for one sweep value (`unit`: ŝ; `perturbation`: n `[B, K]`)."""
    if sweep == "shift":
        return logits + np.float32(value * unit)
    if sweep == "scale":
        return logits * np.float32(value)
    if sweep == "gaussian":
        return logits + np.float32(value * unit) * perturbation
    raise ValueError(f"sweep must be shift, scale or gaussian. Received: sweep={sweep}")


def run(model, data, seed=0, shifts=SHIFTS, scales=SCALES, sigmas=SIGMAS, show=2):
    """Every sweep value applied to every image's logits, reconstructed with the same noise.

    Args:
        model: an `AnalysisModel`.
        data: `data.Images`.
        seed: seed of the noise ε (seed + 1: the perturbation directions n).
        shifts, sigmas: values in units of ŝ; scales: factors.
        show: images in the figure.

    Returns:
        A result dict; `tables["sweeps"]` has one row per (sweep, value).
    """
    images = data.images
    n = len(images)
    noise = model.noise(n, seed)
    logits = model.classify(images)
    base = model.generate(logits, noise)
    unit = common.logit_scale(logits)
    perturbation = np.random.default_rng(seed + 1).standard_normal(logits.shape).astype(np.float32)
    base_contrast, base_sharpness = common.contrast(base), sharpness(base)
    # A change of class is counted against the unedited reconstruction's class: what the edit
    # did, not how well the inverter reproduces the original.
    classes = np.argmax(model.classify(base), -1)
    rows, shown, per_image = [], {}, {}
    for sweep, values in (("shift", shifts), ("scale", scales), ("gaussian", sigmas)):
        shown[sweep] = []
        for value in values:
            edited = manipulate(logits, sweep, value, unit, perturbation)
            reconstructions = model.generate(edited, noise)
            recon_logits = model.classify(reconstructions)
            change = common.pixel_distance(reconstructions, base)
            per_image.setdefault(sweep, []).append((float(value), change))
            rows.append({
                **_with_interval("pixel_change", change),
                **_with_interval("contrast_change", common.contrast(reconstructions)
                                 - base_contrast),
                **_with_interval("sharpness_change", sharpness(reconstructions)
                                 - base_sharpness),
                **_rate("class_change_rate", np.argmax(recon_logits, -1) != classes),
                "sweep": sweep, "value": float(value),
                "absolute_value": float(value if sweep == "scale" else value * unit),
                "pixel_change": float(common.pixel_distance(reconstructions, base).mean()),
                "brightness": float(common.brightness(reconstructions).mean()),
                "contrast": float(common.contrast(reconstructions).mean()),
                "top1_agreement": common.agreement(logits, recon_logits),
                "edited_logits_top1_agreement": common.agreement(logits, edited),
            })
            shown[sweep].append((value, reconstructions[:show], recon_logits[:show]))
    identity = [r["pixel_change"] for r in rows if r["value"] == IDENTITY[r["sweep"]]]
    slopes = {f"{sweep}_pixel_change_per_unit": _slope(entries, IDENTITY[sweep])
              for sweep, entries in per_image.items()}
    summary = {"images": n, "logit_unit": unit,
               **{f"{k}{suffix}": v for k, (mean, low, high) in slopes.items()
                  for suffix, v in (("", mean), ("_low", low), ("_high", high))},
               "identity_pixel_change": float(max(identity)) if identity else float("nan"),
               "base_brightness": float(common.brightness(base).mean()),
               "base_contrast": float(common.contrast(base).mean())}
    params = {"seed": seed, "shifts": list(shifts), "scales": list(scales), "sigmas": list(sigmas)}
    return common.result(summary, {"sweeps": rows}, params,
                         {"originals": images[:show], "logits": logits[:show],
                          "base": base[:show], "shown": shown})


def sharpness(images):
    """Mean absolute difference between horizontally and vertically adjacent pixels, per
    image `[B]`, in [0, 1] units: larger for crisper edges."""
    x = np.asarray(images, np.float64)
    return (np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3))
            + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))) / 4


def _with_interval(name, values):
    values = np.asarray(values, np.float64)
    low, high = stats.bootstrap_interval(lambda v: float(v.mean()), values)
    return {name: float(values.mean()), f"{name}_low": low, f"{name}_high": high}


def _rate(name, flags):
    flags = np.asarray(flags, bool)
    low, high = stats.proportion_interval(int(flags.sum()), len(flags))
    return {name: float(flags.mean()), f"{name}_low": low, f"{name}_high": high}


def _slope(entries, identity):
    """Mean over images of the least-squares slope of pixel change against |value − identity|
    (through the origin), with its bootstrap interval: (mean, low, high)."""
    x = np.array([abs(value - identity) for value, _ in entries])
    changes = np.stack([change for _, change in entries], axis=1)  # [images, values]
    if not np.any(x):
        return float("nan"), float("nan"), float("nan")
    per_image = changes @ x / float(x @ x)
    low, high = stats.bootstrap_interval(lambda v: float(v.mean()), per_image)
    return float(per_image.mean()), low, high


_ROW_LABELS = {"shift": "shift\nz + c·ŝ", "scale": "scale\nz · s", "gaussian": "perturb\nz + σ·ŝ·n"}
_SYMBOL = {"shift": "c", "scale": "s", "gaussian": "σ"}


def render_figure(model, result):
    a = result["arrays"]
    shown = a["shown"]
    parts = [render.title_bar(TITLE, f"{model.name}: ŝ = {result['summary']['logit_unit']:.2f}; "
                                     "* = unedited logits; captions: Φ top-1 and p")]
    for i in range(len(a["originals"])):
        rows, labels = [], []
        original = render.Cell(a["originals"][i], header="original",
                               caption=common.captions(model, a["logits"][i:i + 1])[0])
        for sweep, entries in shown.items():
            row = [original if not rows else None]
            for value, reconstructions, recon_logits in entries:
                mark = "*" if value == IDENTITY[sweep] else ""
                row.append(render.Cell(reconstructions[i], header=f"{_SYMBOL[sweep]}={value:g}{mark}",
                                       caption=common.captions(model, recon_logits[i:i + 1])[0]))
            rows.append(row)
            labels.append(_ROW_LABELS[sweep])
        parts.append(render.grid(rows, row_labels=labels))
    return render.stack(parts)
