"""Experiment 2, invariance: constant logits, resampled noise (the paper's headline figure).

For each image, K reconstructions G(Φ(x), ε_k) with different noise, and the per-pixel
standard deviation across them: bright where the logits leave the picture undetermined.
Numbers: the mean per-pixel std across ε, and how often each sample keeps the top-1 class.
"""

import numpy as np

from logit_inversion.analysis import common, render

TITLE = "Invariance: fixed logits, resampled noise"
GUIDE = ("Each row: one original, K reconstructions from the same logits with different noise ε, "
         "and the per-pixel std across them. What changes along a row is what Φ is invariant to.")


def run(model, data, seed=0, samples=8, noise=None, show=6):
    """K reconstructions of every image from its logits and K noise vectors.

    Args:
        model: an `AnalysisModel`.
        data: `data.Images`, n images.
        seed: seed of the noise.
        samples: K.
        noise: optional noise `[K, Z]` shared by every image (instead of drawing it from
            `seed`); e.g. K equal rows give a std of exactly 0.
        show: images in the figure.

    Returns:
        A result dict; `arrays["std"]` is the per-pixel std `[show, R, R]` ([0, 1] units).
    """
    images = data.images
    n = len(images)
    if noise is None:
        noise = model.noise(samples, seed)
    noise = np.asarray(noise, np.float32)
    samples = noise.shape[0]
    logits = model.classify(images)
    # [K·n]: sample k of every image, then sample k + 1.
    repeated_logits = np.tile(logits, (samples, 1))
    repeated_noise = np.repeat(noise, n, axis=0)
    reconstructions = model.generate(repeated_logits, repeated_noise)
    recon_logits = model.classify(reconstructions)
    reconstructions = reconstructions.reshape(samples, n, *images.shape[1:]).swapaxes(0, 1)
    recon_logits = recon_logits.reshape(samples, n, -1).swapaxes(0, 1)
    # Std over the samples, per pixel, averaged over colour channels, in [0, 1] units.
    std = reconstructions.astype(np.float64).std(axis=1).mean(-1) / 2
    same = common.top1(recon_logits) == common.top1(logits)[:, None]
    summary = {
        "images": n, "samples": samples,
        "mean_pixel_std": float(std.mean()),
        "max_pixel_std": float(std.max()),
        "sample_agreement": float(same.mean()),
        "all_samples_agree": float(same.all(-1).mean()),
        "mean_pixel_distance_between_samples": float(np.mean(
            [common.pixel_distance(reconstructions[:, i], reconstructions[:, j]).mean()
             for i in range(samples) for j in range(i + 1, samples)] or [0.0])),
    }
    per_class = []
    for c in np.unique(common.top1(logits)):
        rows = common.top1(logits) == c
        per_class.append({"class": model.class_names[c], "images": int(rows.sum()),
                          "mean_pixel_std": float(std[rows].mean()),
                          "sample_agreement": float(same[rows].mean())})
    return common.result(summary, {"per_class": per_class}, {"seed": seed, "samples": samples},
                         {"originals": images[:show], "logits": logits[:show],
                          "samples": reconstructions[:show], "sample_logits": recon_logits[:show],
                          "std": std[:show]})


def render_figure(model, result):
    a = result["arrays"]
    vmax = max(float(a["std"].max()), 1e-6)
    rows = []
    for i in range(len(a["originals"])):
        row = [render.Cell(a["originals"][i], caption=common.captions(model, a["logits"][i:i + 1])[0])]
        row += [render.Cell(x, caption=c) for x, c in
                zip(a["samples"][i], common.captions(model, a["sample_logits"][i]))]
        row.append(render.Cell(render.heatmap(a["std"][i], vmax),
                               caption=f"mean {a['std'][i].mean():.3f}"))
        rows.append(row)
    k = a["samples"].shape[1]
    headers = ["original"] + [f"ε{j + 1}" for j in range(k)] + [f"std (0–{vmax:.2f})"]
    s = result["summary"]
    subtitle = (f"{model.name}: mean per-pixel std {s['mean_pixel_std']:.3f}, sample agreement "
                f"{s['sample_agreement']:.3f} ({s['images']} images × {s['samples']} ε)")
    return render.stack([render.title_bar(TITLE, subtitle),
                         render.grid(rows, column_headers=headers)])
