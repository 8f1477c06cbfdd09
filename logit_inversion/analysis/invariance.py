"""Experiment 2, invariance: constant logits, resampled noise (the paper's headline figure).

For each image, K reconstructions G(Φ(x), ε_k) with different noise, and the per-pixel
standard deviation across them: bright where the logits leave the picture undetermined.
Numbers: the mean per-pixel std across ε, how often each sample keeps the top-1 class, and
per class the share of the pixel variance that ε explains (`epsilon_variance_fraction`). The
fraction is the number comparisons rest on (it is about Φ: how much of the picture the logits
leave open; the raw std is also about how bold the generator is), so the summary gives it a
seeded bootstrap 95 % interval over images (`epsilon_variance_fraction_low`/`_high`).

These say something about Φ only if the generator uses its noise: a generator that ignores ε
draws K near-identical samples whatever Φ ignores. So the collapse check comes first: the
ε-diversity of `models.noise_use` (samples of the same logits against real images of the
class); below its threshold the verdict is "not testable: the generator ignores ε".
"""

import numpy as np

from logit_inversion.analysis import common, render, stats
from logit_inversion.models import noise_use

TITLE = "Invariance: fixed logits, resampled noise"
GUIDE = ("Each row: one original, K reconstructions from the same logits with different noise ε, "
         "and the per-pixel std across them. What changes along a row is what Φ is invariant to.")


def epsilon_variance_fraction(samples, keeps, classes, num_classes):
    """Per class: the share of the reconstructions' pixel variance that comes from ε.

    Within class c, among the samples that keep their original's class and the images with
    at least two such samples: the variance across ε (each pixel's squared deviation from its
    image's mean sample) over the total variance across images and ε (from the class's mean
    sample), summed over pixels. By the law of total variance it lies in [0, 1]: near 1, the
    samples hardly depend on which image's logits they came from (Φ keeps little beyond the
    class); near 0, the logits fix the picture and ε changes little of it.

    Args:
        samples: `[n, K, h, w, c]`, K reconstructions of each of n images.
        keeps: bool `[n, K]`: sample k of image i has image i's class.
        classes: int `[n]`, each image's class.
        num_classes: the number of classes.

    Returns:
        One dict per class: `images` and `samples` used, `epsilon_variance_fraction` (None
        where fewer than two images qualify or the samples do not vary at all).
    """
    samples = np.asarray(samples, np.float64)
    keeps = np.asarray(keeps, bool)
    classes = np.asarray(classes).reshape(-1)
    if samples.ndim < 3 or keeps.shape != samples.shape[:2] or len(classes) != len(samples):
        raise ValueError(f"Expected samples [n, K, ...], keeps [n, K] and classes [n] with the "
                         f"same n and K. Received: samples.shape={samples.shape}, "
                         f"keeps.shape={keeps.shape}, classes.shape={classes.shape}")
    rows = []
    for c in range(num_classes):
        used = np.flatnonzero((classes == c) & (keeps.sum(-1) >= 2))
        kept = [samples[i][keeps[i]] for i in used]
        value = None
        if len(kept) >= 2:
            within = sum(float(np.square(x - x.mean(0)).sum()) for x in kept)
            pooled = np.concatenate(kept)
            total = float(np.square(pooled - pooled.mean(0)).sum())
            value = within / total if total > 0 else None
        rows.append({"images": len(kept), "samples": int(sum(len(x) for x in kept)),
                     "epsilon_variance_fraction": value})
    return rows


def _variance_sums(samples, keeps):
    """Per image: how many samples keep its class, their pixel sum and their sum of squares.

    Both variances of `epsilon_variance_fraction` follow from these sums, so a bootstrap
    resample of images adds up n rows instead of passing over every pixel again.
    """
    x = np.asarray(samples, np.float64).reshape(*np.shape(keeps), -1)
    w = np.asarray(keeps, np.float64)[..., None]
    return (np.asarray(keeps).sum(-1), (x * w).sum(1), (np.square(x) * w).sum((1, 2)))


def _mean_fraction(counts, sums, squares, classes, ids, num_classes):
    """The class mean of `epsilon_variance_fraction` from `_variance_sums` rows of the images
    `ids` (an image counts once per time it appears, as in a bootstrap resample); NaN when no
    class has one."""
    values = []
    for c in range(num_classes):
        used = (classes == c) & (counts >= 2)
        # One image drawn twice is not two images: its copies have no variance between them.
        if np.unique(ids[used]).size < 2:
            continue
        n, s, q = counts[used], sums[used], squares[used]
        within = float((q - np.square(s).sum(-1) / n).sum())
        total = float(q.sum() - np.square(s.sum(0)).sum() / n.sum())
        if total > 0:
            values.append(within / total)
    return float(np.mean(values)) if values else float("nan")


def epsilon_variance_fraction_interval(samples, keeps, classes, num_classes,
                                       resamples=stats.RESAMPLES, seed=0):
    """Percentile bootstrap 95 % interval, over images, of the class mean of
    `epsilon_variance_fraction` (same arguments); `(nan, nan)` when it is undefined."""
    counts, sums, squares = _variance_sums(samples, keeps)
    classes = np.asarray(classes).reshape(-1)
    return stats.bootstrap_interval(
        lambda n, s, q, c, i: _mean_fraction(n, s, q, c, i, num_classes), counts, sums,
        squares, classes, np.arange(len(classes)), resamples=resamples, seed=seed)


def noise_use_of(model, data, seed=0, samples=8):
    """The collapse check of one model: `noise_use.epsilon_diversity` per class (a list, as
    it returns) and the model's overall value, from `samples` ε per image of `data`."""
    logits = model.classify(data.images)
    noise = model.noise(samples, seed)
    n = len(logits)
    reconstructions = model.generate(np.tile(logits, (samples, 1)), np.repeat(noise, n, axis=0))
    reconstructions = reconstructions.reshape(samples, n, *data.images.shape[1:]).swapaxes(0, 1)
    classes = common.top1(logits)
    per_class = noise_use.epsilon_diversity(reconstructions, classes, data.images, classes,
                                            model.num_classes)
    return per_class, noise_use.overall(per_class)


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
    classes = common.top1(logits)
    same = common.top1(recon_logits) == classes[:, None]
    # The collapse check and Φ's invariance, both per class (classes with no image are left
    # out of the table; their values are None).
    diversity = (noise_use.epsilon_diversity(reconstructions, classes, images, classes,
                                             model.num_classes) if samples >= 2 else None)
    overall = noise_use.overall(diversity) if diversity else None
    fractions = epsilon_variance_fraction(reconstructions, same, classes, model.num_classes)
    defined = [r["epsilon_variance_fraction"] for r in fractions
               if r["epsilon_variance_fraction"] is not None]
    mean_fraction = float(np.mean(defined)) if defined else None
    low = high = None
    if defined:
        low, high = epsilon_variance_fraction_interval(reconstructions, same, classes,
                                                       model.num_classes, seed=seed)
        if not np.isfinite(low):   # JSON has no NaN
            low = high = None
    # The images the fraction rests on: those with two or more samples of their class.
    used = sum(r["images"] for r in fractions if r["epsilon_variance_fraction"] is not None)
    summary = {
        "images": n, "samples": samples,
        "mean_pixel_std": float(std.mean()),
        "max_pixel_std": float(std.max()),
        "sample_agreement": float(same.mean()),
        "all_samples_agree": float(same.all(-1).mean()),
        "mean_pixel_distance_between_samples": float(np.mean(
            [common.pixel_distance(reconstructions[:, i], reconstructions[:, j]).mean()
             for i in range(samples) for j in range(i + 1, samples)] or [0.0])),
        "epsilon_diversity": overall,
        "epsilon_diversity_threshold": noise_use.THRESHOLD,
        "generator_ignores_noise": noise_use.ignores_noise(overall),
        "epsilon_variance_fraction": mean_fraction,
        "epsilon_variance_fraction_low": low,
        "epsilon_variance_fraction_high": high,
        "epsilon_variance_fraction_images": int(used),
        "verdict": _verdict(overall, mean_fraction, (low, high)),
    }
    per_class = []
    for c in np.unique(classes):
        rows = classes == c
        value = diversity[c]["epsilon_diversity"] if diversity else None
        fraction = fractions[c]["epsilon_variance_fraction"]
        per_class.append({"class": model.class_names[c], "images": int(rows.sum()),
                          "mean_pixel_std": float(std[rows].mean()),
                          "sample_agreement": float(same[rows].mean()),
                          "epsilon_diversity": value,
                          "epsilon_variance_fraction": fraction,
                          "verdict": _verdict(value, fraction)})
    return common.result(summary, {"per_class": per_class}, {"seed": seed, "samples": samples},
                         {"originals": images[:show], "logits": logits[:show],
                          "samples": reconstructions[:show], "sample_logits": recon_logits[:show],
                          "std": std[:show]})


def _verdict(diversity, fraction, interval=(None, None)):
    """What the numbers may say about Φ: nothing when the generator ignores ε."""
    if diversity is None:
        return "not testable: fewer than two ε samples or real images"
    if noise_use.ignores_noise(diversity):
        return noise_use.NOT_TESTABLE
    if fraction is None:
        return "not testable: too few samples keep their class"
    low, high = interval
    spread = "" if low is None else f" (95 % {low:.0%}–{high:.0%})"
    return f"testable: ε explains {fraction:.0%}{spread} of the pixel variance within a class"


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
    if s.get("epsilon_diversity") is not None:
        subtitle += f"; ε-diversity {s['epsilon_diversity']:.2f}: {s['verdict']}"
    return render.stack([render.title_bar(TITLE, subtitle),
                         render.grid(rows, column_headers=headers)])
