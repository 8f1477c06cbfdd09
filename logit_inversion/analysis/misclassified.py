"""Experiment 6, misclassified: what does the inverter draw from a wrong prediction?

Images whose top-1 is not their label, their reconstructions, the true and predicted labels.
Numbers: how often the reconstruction is classified as the wrong prediction (the logits drew
what Φ believed) or as the true class, with 95 % Wilson intervals over the misclassified
images. Φ judging the reconstruction is circular (the inverter was trained to make Φ agree
with its input logits), so when a second classifier is given it judges too: how often it calls
the reconstruction Φ's prediction and how often the true class, and its accuracy on the
originals themselves (an independent reader of the picture).

When Φ makes no mistake among the scanned images, the rates read "not tested: no
misclassified image" and the figure shows the least confident images instead.
"""

import numpy as np

from logit_inversion.analysis import common, render, stats
from logit_inversion.serving.model import softmax

TITLE = "Misclassified images"
GUIDE = ("Originals Φ gets wrong (label above, Φ's top-1 below) and their reconstructions. A "
         "reconstruction showing the predicted class means the logits encode Φ's mistake.")
NOT_TESTED = "not tested: no misclassified image"


def run(model, data, seed=0, show=8, second_classifier=None, second_name=None):
    """Finds the misclassified images of `data` (which needs labels) and reconstructs them.

    Args:
        model: an `AnalysisModel`.
        data: `data.Images` with labels: the pool to scan.
        seed: noise seed.
        show: images in the figure.
        second_classifier: optional callable, float images `[B, R, R, 3]` in [-1, 1] →
            logits over the same classes.
        second_name: its label for the tables.

    Returns:
        A result dict.
    """
    if not (data.labels >= 0).all():
        raise ValueError(f"The misclassified experiment needs labelled images. "
                         f"Received: {data.source} without labels")
    logits = model.classify(data.images)
    predicted = common.top1(logits)
    wrong = np.nonzero(predicted != data.labels)[0]
    confidence = softmax(logits).max(-1)
    summary = {"scanned": len(data), "misclassified": int(wrong.size),
               "error_rate": float(wrong.size / len(data)),
               "status": "tested" if wrong.size else NOT_TESTED}
    judge = None
    if second_classifier is not None:
        probe = np.asarray(second_classifier(data.images[:1]))
        if probe.ndim != 2 or probe.shape[1] != model.num_classes:
            raise ValueError(f"The second classifier must give logits over Φ's "
                             f"{model.num_classes} classes. Received: logits of shape "
                             f"{probe.shape}")
        judge = lambda x: common.top1(np.asarray(second_classifier(x)))  # noqa: E731
        summary["second_classifier"] = second_name or "second"
    chosen = wrong
    if wrong.size == 0:
        chosen = np.argsort(confidence)[:show]
        summary["note"] = f"no misclassified image among {len(data)}; figure shows the least confident"
    images = data.images[chosen]
    noise = model.noise(len(chosen), seed)
    reconstructions = model.generate(logits[chosen], noise) if len(chosen) else images
    recon_logits = model.classify(reconstructions) if len(chosen) else logits[chosen]
    if wrong.size:
        recon_classes = common.top1(recon_logits)
        summary.update(_rate("recon_as_prediction", recon_classes == predicted[wrong]))
        summary.update(_rate("recon_as_true", recon_classes == data.labels[wrong]))
        if judge is not None:
            second = judge(reconstructions)
            summary.update(_rate("second_on_recon_prediction", second == predicted[wrong]))
            summary.update(_rate("second_on_recon_true", second == data.labels[wrong]))
            summary.update(_rate("second_on_originals_true", judge(images) == data.labels[wrong]))
    rows = [{"index": int(i), "label": model.class_names[data.labels[i]],
             "predicted": model.class_names[predicted[i]],
             "confidence": float(confidence[i]),
             "recon_top1": model.class_names[common.top1(recon_logits[k:k + 1])[0]]}
            for k, i in enumerate(chosen[:50])]
    return common.result(summary, {"images": rows}, {"seed": seed},
                         {"originals": images[:show], "logits": logits[chosen][:show],
                          "labels": data.labels[chosen][:show],
                          "reconstructions": reconstructions[:show],
                          "recon_logits": recon_logits[:show]})


def _rate(name, hits):
    """`{name: rate, name_low, name_high}`: a rate over the misclassified images and its
    Wilson 95 % interval."""
    low, high = stats.proportion_interval(int(np.sum(hits)), int(np.size(hits)))
    return {name: float(np.mean(hits)), f"{name}_low": low, f"{name}_high": high}


def render_figure(model, result):
    a = result["arrays"]
    s = result["summary"]
    if len(a["originals"]) == 0:
        return render.title_bar(TITLE, f"{model.name}: no images to show")
    top = [render.Cell(x, header=f"label {model.class_names[y]}", caption=c) for x, y, c in
           zip(a["originals"], a["labels"], common.captions(model, a["logits"]))]
    bottom = [render.Cell(x, caption=c) for x, c in
              zip(a["reconstructions"], common.captions(model, a["recon_logits"]))]
    subtitle = (s.get("note") or f"{model.name}: {s['misclassified']} of {s['scanned']} wrong; "
                f"reconstruction shows the prediction {s['recon_as_prediction']:.2f}, "
                f"the true class {s['recon_as_true']:.2f}")
    return render.stack([render.title_bar(TITLE, subtitle),
                         render.grid([top, bottom], row_labels=["original", "G(Φ(x), ε)"])])
