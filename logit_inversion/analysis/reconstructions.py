"""Experiment 1, reconstructions: originals beside G(Φ(x), ε), with both top-1 labels.

Numbers: top-1 agreement (the reconstruction's top-1 is the original's), top-5 agreement (the
original's top-1 is among the reconstruction's top 5), the mean cosine and relative L2
distance between Φ(x) and Φ(G(Φ(x), ε)), and the mean pixel distance to the original.
"""

import numpy as np

from logit_inversion.analysis import common, render

TITLE = "Reconstructions"
GUIDE = ("Top row: originals; bottom row: G(Φ(x), ε). Same top-1 class below both means the "
         "logits kept what the classifier uses; everything else in the picture was re-invented.")


def run(model, data, seed=0, show=8):
    """Reconstructs every image of `data` once, with noise from `seed`.

    Args:
        model: an `AnalysisModel`.
        data: `data.Images` (n images).
        seed: noise seed.
        show: images in the figure.

    Returns:
        A result dict (see `common`).
    """
    images = data.images
    noise = model.noise(len(images), seed)
    logits, reconstructions, recon_logits = common.reconstruct(model, images, noise)
    k = min(5, model.num_classes)
    top_k = np.argsort(-recon_logits, axis=-1)[:, :k]
    in_top_k = (top_k == common.top1(logits)[:, None]).any(-1)
    cosine = np.sum(logits * recon_logits, -1) / (
        np.linalg.norm(logits, axis=-1) * np.linalg.norm(recon_logits, axis=-1) + 1e-12)
    relative_l2 = np.linalg.norm(logits - recon_logits, axis=-1) / (
        np.linalg.norm(logits, axis=-1) + 1e-12)
    summary = {
        "images": len(images),
        "top1_agreement": common.agreement(model.class_logits(images, logits),
                                           model.class_logits(reconstructions, recon_logits)),
        f"top{k}_agreement": float(in_top_k.mean()),
        "logit_cosine": float(cosine.mean()),
        "logit_relative_l2": float(relative_l2.mean()),
        "pixel_distance": float(common.pixel_distance(images, reconstructions).mean()),
    }
    if (data.labels >= 0).all():
        summary["classifier_accuracy"] = float(np.mean(common.top1(logits) == data.labels))
        summary["reconstruction_accuracy"] = float(np.mean(common.top1(recon_logits) == data.labels))
    return common.result(summary, params={"seed": seed}, arrays={
        "originals": images[:show], "reconstructions": reconstructions[:show],
        "logits": logits[:show], "recon_logits": recon_logits[:show]})


def render_figure(model, result):
    a = result["arrays"]
    rows = [[render.Cell(x, caption=c) for x, c in zip(a[key], common.captions(model, a[lk]))]
            for key, lk in (("originals", "logits"), ("reconstructions", "recon_logits"))]
    s = result["summary"]
    subtitle = (f"{model.name}: top-1 agreement {s['top1_agreement']:.3f}, logit cosine "
                f"{s['logit_cosine']:.3f} over {s['images']} images; captions: Φ top-1 and p")
    return render.stack([render.title_bar(TITLE, subtitle),
                         render.grid(rows, row_labels=["original x", "G(Φ(x), ε)"])])
