"""Experiment 7, out-of-distribution: what do the logits of unfamiliar inputs reconstruct to?

Inputs: the in-distribution images, synthetic ones (noise, constant colours, gradients, a
checkerboard) and, optionally, images of another dataset or an image folder. The inverter
only ever saw logits of in-distribution images, so its reconstructions of OOD logits show
what in-distribution picture those logits resemble.

Numbers per group: the mean logit L2 norm and max-softmax (OOD inputs often get confident
logits too), the reconstruction's top-1 agreement with the input's, the pixel distance from
input to reconstruction, and the reconstructions' brightness and contrast; in the summary,
the AUROC of max-softmax for telling in-distribution from OOD inputs.
"""

import numpy as np

from logit_inversion.analysis import common, render
from logit_inversion.serving.model import softmax

TITLE = "Out-of-distribution inputs"
GUIDE = ("Pairs of rows: inputs and their reconstructions, for in-distribution images, synthetic "
         "inputs and another dataset. OOD logits come back as in-distribution pictures.")


def synthetic_inputs(resolution, seed=0):
    """Named synthetic images: float32 `[n, R, R, 3]` in [-1, 1] and n names."""
    r = resolution
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-1.0, 1.0, r, dtype=np.float32)
    images, names = [], []

    def add(name, image):
        images.append(np.broadcast_to(image, (r, r, 3)).astype(np.float32))
        names.append(name)

    add("uniform noise", rng.uniform(-1, 1, (r, r, 3)))
    add("gaussian noise", np.clip(rng.normal(0, 0.5, (r, r, 3)), -1, 1))
    for name, rgb in (("black", (-1, -1, -1)), ("white", (1, 1, 1)), ("gray", (0, 0, 0)),
                      ("red", (1, -1, -1)), ("green", (-1, 1, -1)), ("blue", (-1, -1, 1))):
        add(name, np.array(rgb, np.float32))
    add("h-gradient", ramp[None, :, None])
    add("v-gradient", np.stack([ramp[:, None].repeat(r, 1), np.zeros((r, r)),
                                -ramp[:, None].repeat(r, 1)], -1))
    checker = ((np.arange(r)[:, None] // 4 + np.arange(r)[None, :] // 4) % 2) * 2.0 - 1.0
    add("checkerboard", checker[..., None])
    return np.stack(images), names


def auroc(in_scores, out_scores):
    """P(in score > out score) (+ half the ties): the AUROC of telling in from out by score."""
    a, b = np.asarray(in_scores)[:, None], np.asarray(out_scores)[None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def run(model, data, seed=0, external=None, show=6):
    """Reconstructs in-distribution, synthetic and (optionally) external images.

    Args:
        model: an `AnalysisModel`.
        data: `data.Images`, the in-distribution images.
        seed: noise seed.
        external: optional `data.Images` of another dataset or folder (same resolution).
        show: images per group in the figure.

    Returns:
        A result dict; `tables["groups"]` has one row per group.
    """
    synthetic, names = synthetic_inputs(model.resolution, seed)
    groups = [("in-distribution", data.images, None), ("synthetic", synthetic, names)]
    if external is not None:
        groups.append((f"external ({external.source})", external.images, None))
    rows, arrays = [], {}
    max_softmax = {}
    for g, (group, images, labels) in enumerate(groups):
        noise = model.noise(len(images), seed + g)
        logits, reconstructions, recon_logits = common.reconstruct(model, images, noise)
        confidence = softmax(logits).max(-1)
        max_softmax[group] = confidence
        rows.append({
            "group": group, "images": len(images),
            "logit_norm": float(np.linalg.norm(logits, axis=-1).mean()),
            "max_softmax": float(confidence.mean()),
            "recon_agreement": common.agreement(logits, recon_logits),
            "pixel_distance": float(common.pixel_distance(images, reconstructions).mean()),
            "input_brightness": float(common.brightness(images).mean()),
            "recon_brightness": float(common.brightness(reconstructions).mean()),
            "input_contrast": float(common.contrast(images).mean()),
            "recon_contrast": float(common.contrast(reconstructions).mean()),
        })
        count = len(images) if labels is not None else show
        arrays[group] = {"inputs": images[:count], "logits": logits[:count],
                         "reconstructions": reconstructions[:count],
                         "recon_logits": recon_logits[:count], "names": labels}
    in_rows = rows[0]
    out = np.concatenate([max_softmax[r["group"]] for r in rows[1:]])
    summary = {"in_logit_norm": in_rows["logit_norm"], "in_max_softmax": in_rows["max_softmax"],
               "ood_logit_norm": float(np.mean([r["logit_norm"] for r in rows[1:]])),
               "ood_max_softmax": float(out.mean()),
               "max_softmax_auroc": auroc(max_softmax[in_rows["group"]], out)}
    return common.result(summary, {"groups": rows}, {"seed": seed}, {"groups": arrays})


def render_figure(model, result):
    rows, labels = [], []
    for group, a in result["arrays"]["groups"].items():
        headers = a["names"] or [""] * len(a["inputs"])
        rows.append([render.Cell(x, header=h, caption=c) for x, h, c in
                     zip(a["inputs"], headers, common.captions(model, a["logits"]))])
        rows.append([render.Cell(x, caption=c) for x, c in
                     zip(a["reconstructions"], common.captions(model, a["recon_logits"]))])
        labels += [group.split(" (")[0].replace("-", "-\n", 1), "G(Φ(x), ε)"]
    s = result["summary"]
    subtitle = (f"{model.name}: max-softmax in {s['in_max_softmax']:.2f} vs OOD "
                f"{s['ood_max_softmax']:.2f} (AUROC {s['max_softmax_auroc']:.2f}); "
                f"logit norm {s['in_logit_norm']:.1f} vs {s['ood_logit_norm']:.1f}")
    return render.stack([render.title_bar(TITLE, subtitle), render.grid(rows, row_labels=labels)])
