"""Experiment 8, compare: the same images, with the same noise seed, through several inverters.

One figure row per inverter (e.g. the standard and the robust classifier's), numbers side by
side: top-1 agreement with its own classifier, logit cosine, pixel distance to the original,
per-pixel std over resampled noise (invariance), and, when the inverters share a resolution
and classes, each one's reconstructions read by every classifier (a cross-reading table).

Every inverter reconstructs from the logits of its own classifier Φ (the one it holds) and is
scored by it; each row names that classifier. Only the cross-reading table reads one
inverter's reconstructions with the others' classifiers, and its columns say whose.
"""

import numpy as np

from logit_inversion.analysis import common, render

TITLE = "Inverters compared"
GUIDE = ("Top row: originals; then one row per inverter, same images and noise seed. Lower pixel "
         "distance and std mean that classifier's logits keep more of the picture.")


def run(models, data, seed=0, samples=4, show=8):
    """Reconstructs `data` with every model in `models` (a list of `AnalysisModel`s).

    Returns:
        A result dict; `tables["models"]` one row per model, `tables["cross_reading"]` the
        top-1 agreement with the labels of model i's reconstructions under model j's Φ.
    """
    if not models:
        raise ValueError("compare needs at least one model. Received: models=[]")
    images = data.images
    n = len(images)
    labelled = bool((data.labels >= 0).all())
    rows, arrays, reconstructions = [], [], []
    for model in models:
        logits, recon, recon_logits = common.reconstruct(model, images, model.noise(n, seed))
        cosine = np.sum(logits * recon_logits, -1) / (
            np.linalg.norm(logits, axis=-1) * np.linalg.norm(recon_logits, axis=-1) + 1e-12)
        resampled = np.stack([model.generate(logits, model.noise(n, seed + 1 + k))
                              for k in range(samples)])
        row = {"model": model.name, "path": model.path,
               "classifier": model.classifier or f"held by {model.name} (not recorded)",
               "images": n,
               "top1_agreement": common.agreement(model.class_logits(images, logits),
                                                 model.class_logits(recon, recon_logits)),
               "logit_cosine": float(cosine.mean()),
               "pixel_distance": float(common.pixel_distance(images, recon).mean()),
               "mean_pixel_std": float((resampled.std(axis=0).mean(-1) / 2).mean())}
        if labelled:
            row["recon_accuracy"] = float(np.mean(common.top1(recon_logits) == data.labels))
        rows.append(row)
        reconstructions.append(recon)
        arrays.append({"name": model.name, "logits": logits[:show],
                       "reconstructions": recon[:show], "recon_logits": recon_logits[:show]})
    cross = []
    same_space = len({(m.resolution, m.class_names) for m in models}) == 1
    if labelled and same_space and len(models) > 1:
        for model_i, recon in zip(models, reconstructions):
            entry = {"reconstructions_of": model_i.name}
            for model_j in models:
                entry[f"read_by_{model_j.name}"] = float(
                    np.mean(common.top1(model_j.classify(recon)) == data.labels))
            cross.append(entry)
    summary = {f"{r['model']}_{key}": r[key] for r in rows
               for key in ("top1_agreement", "pixel_distance", "mean_pixel_std")}
    summary["images"] = n
    return common.result(summary, {"models": rows, "cross_reading": cross},
                         {"seed": seed, "samples": samples, "models": [m.path for m in models]},
                         {"originals": images[:show], "models": arrays})


def render_figure(models, result):
    a = result["arrays"]
    first = models[0]
    rows = [[render.Cell(x, caption=c) for x, c in
             zip(a["originals"], common.captions(first, a["models"][0]["logits"]))]]
    labels = ["original"]
    for model, entry, row in zip(models, a["models"], result["tables"]["models"]):
        rows.append([render.Cell(x, caption=c) for x, c in
                     zip(entry["reconstructions"], common.captions(model, entry["recon_logits"]))])
        labels.append(f"{entry['name']}\nΦ {_short(row['classifier'])}\n"
                      f"dist {row['pixel_distance']:.3f}")
    subtitle = ("same images and noise seed; each inverter reconstructs from and is read by its "
                f"own Φ; top row's captions: {_short(result['tables']['models'][0]['classifier'])}; "
                "dist: mean pixel distance to the original")
    return render.stack([render.title_bar(TITLE, subtitle), render.grid(rows, row_labels=labels)])


def _short(handle, width=24):
    """The last part of a classifier handle, cut to `width` characters for a figure label."""
    text = str(handle).rstrip("/").rsplit("/", 1)[-1]
    return text if len(text) <= width else text[:width - 2] + ".."
