"""Experiment 5, adversarial: attack Φ, then reconstruct from the adversarial logits.

FGSM (one step of size ε) and PGD (`steps` steps of 2.5 ε / steps, projected), each in an L∞
and an L2 ball, untargeted (away from the true class) and targeted (towards class y + 1),
over a sweep of ε in [0, 1] pixel units. If the reconstruction shows the adversarial class,
the logits really encode it (the attack changed what Φ "sees"); if it shows the true class,
the logits still carry the original picture.

Numbers per (method, norm, goal, ε): attack success rate; the fraction of reconstructions
classified as the adversarial class and as the true class; the pixel distance from the clean
reconstruction (same noise).
"""

import numpy as np
import tensorflow as tf

from logit_inversion.analysis import common, render

TITLE = "Adversarial logits, reconstructed"
GUIDE = ("Rows: attacks on Φ; per ε, the adversarial image and G(Φ(x_adv), ε). If the "
         "reconstruction shows the adversarial class, the attack changed what the logits encode.")
LINF_EPSILONS = (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
L2_EPSILONS = (0.0, 0.25, 0.5, 1.0, 2.0)
METHODS = ("fgsm", "pgd")
NORMS = ("linf", "l2")
GOALS = ("untargeted", "targeted")


def attack(gradient_fn, images, labels, epsilon, norm, steps, targeted):
    """An L∞ or L2 attack on float images `[B, R, R, 3]` in [-1, 1].

    Args:
        gradient_fn: `(images, labels) →` gradient of the summed cross-entropy of `labels`
            with respect to the images (see `make_gradient_fn`).
        images: float32 `[B, R, R, 3]` in [-1, 1].
        labels: int `[B]`: the true class (untargeted) or the target (targeted).
        epsilon: radius in [0, 1] pixel units (the L2 norm is over all R·R·3 values).
        norm: `"linf"` or `"l2"`.
        steps: 1 for FGSM (step = ε); more for PGD (step = 2.5 ε / steps).
        targeted: descend the loss of `labels` instead of ascending it.

    Returns:
        float32 `[B, R, R, 3]` within ε of `images` (in [0, 1] units) and in [-1, 1].
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}. Received: norm={norm}")
    if epsilon < 0 or steps < 1:
        raise ValueError(f"Expected epsilon ≥ 0 and steps ≥ 1. Received: epsilon={epsilon}, "
                         f"steps={steps}")
    images = np.asarray(images, np.float32)
    if epsilon == 0:
        return images
    radius = 2.0 * epsilon  # [-1, 1] images: pixel units double
    step = radius if steps == 1 else 2.5 * radius / steps
    sign = -1.0 if targeted else 1.0
    adversarial = images
    for _ in range(steps):
        gradient = sign * np.asarray(gradient_fn(tf.constant(adversarial), tf.constant(labels)))
        if norm == "linf":
            adversarial = adversarial + step * np.sign(gradient)
            adversarial = np.clip(adversarial, images - radius, images + radius)
        else:
            norms = np.sqrt((gradient.astype(np.float64) ** 2).sum(axis=(1, 2, 3), keepdims=True))
            adversarial = adversarial + step * gradient / np.maximum(norms, 1e-12)
            delta = adversarial - images
            length = np.sqrt((delta.astype(np.float64) ** 2).sum(axis=(1, 2, 3), keepdims=True))
            adversarial = images + delta * np.minimum(1.0, radius / np.maximum(length, 1e-12))
        adversarial = np.clip(adversarial, -1.0, 1.0).astype(np.float32)
    return adversarial


def make_gradient_fn(classify_fn):
    """The gradient of Σ cross-entropy(Φ(x), y) with respect to x, as a `tf.function`."""

    @tf.function(reduce_retracing=True)
    def gradient(images, labels):
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = classify_fn(images)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.cast(labels, tf.int32), logits))
        return tape.gradient(loss, images)

    return gradient


def run(model, data, seed=0, linf_epsilons=LINF_EPSILONS, l2_epsilons=L2_EPSILONS, steps=10,
        max_images=64):
    """Every attack at every ε on the first `max_images` images, then reconstruction.

    Returns:
        A result dict; `tables["attacks"]` has one row per (method, norm, goal, ε).
    """
    if not model.differentiable:
        raise ValueError(
            f"The adversarial experiment needs gradients of Φ; this export has no "
            f"`classify_float` signature (re-export it with bin/export). Received: path={model.path}")
    data = data.take(max_images)
    images = data.images
    logits = model.classify(images)
    true = data.labels if (data.labels >= 0).all() else common.top1(logits)
    target = (true + 1) % model.num_classes
    noise = model.noise(len(images), seed)
    clean_reconstructions = model.generate(logits, noise)
    gradient_fn = make_gradient_fn(model.classify_fn)
    rows, shown = [], {}
    for method in METHODS:
        for norm in NORMS:
            epsilons = linf_epsilons if norm == "linf" else l2_epsilons
            for goal in GOALS:
                key = f"{method}-{norm}-{goal}"
                shown[key] = []
                for epsilon in epsilons:
                    adversarial = attack(gradient_fn, images, target if goal == "targeted" else true,
                                         epsilon, norm, 1 if method == "fgsm" else steps,
                                         goal == "targeted")
                    adv_logits = model.classify(adversarial)
                    reconstructions = model.generate(adv_logits, noise)
                    recon_classes = common.top1(model.classify(reconstructions))
                    adv_classes = common.top1(adv_logits)
                    success = adv_classes == target if goal == "targeted" else adv_classes != true
                    delta = (adversarial - images).astype(np.float64) / 2
                    size = (np.abs(delta).max(axis=(1, 2, 3)) if norm == "linf"
                            else np.sqrt((delta ** 2).sum(axis=(1, 2, 3))))
                    recon_adv = recon_classes == adv_classes
                    rows.append({
                        "method": method, "norm": norm, "goal": goal, "epsilon": float(epsilon),
                        "success_rate": float(success.mean()),
                        "recon_as_adversarial": float(recon_adv.mean()),
                        "recon_as_true": float(np.mean(recon_classes == true)),
                        "recon_as_adversarial_if_success": (float(recon_adv[success].mean())
                                                            if success.any() else None),
                        "recon_pixel_distance": float(common.pixel_distance(
                            reconstructions, clean_reconstructions).mean()),
                        "perturbation": float(size.mean()),
                    })
                    shown[key].append((epsilon, adversarial[0], adv_logits[0],
                                       reconstructions[0], model.classify(reconstructions[:1])[0]))
    pgd = [r for r in rows if r["method"] == "pgd" and r["epsilon"] > 0]
    strongest = {f"{r['norm']}_{r['goal']}": r for r in pgd
                 if r["epsilon"] == max(x["epsilon"] for x in pgd if x["norm"] == r["norm"])}
    summary = {"images": len(images)}
    for key, r in strongest.items():
        summary[f"pgd_{key}_eps{r['epsilon']:.3g}_success"] = r["success_rate"]
        summary[f"pgd_{key}_eps{r['epsilon']:.3g}_recon_as_adversarial"] = r["recon_as_adversarial"]
    params = {"seed": seed, "steps": steps, "linf_epsilons": list(linf_epsilons),
              "l2_epsilons": list(l2_epsilons), "epsilon_units": "[0, 1] pixels",
              "target": "(true class + 1) mod K"}
    return common.result(summary, {"attacks": rows}, params,
                         {"original": images[0], "logits": logits[0], "shown": shown,
                          "true": int(true[0]), "target": int(target[0])})


def _epsilon_label(epsilon, norm):
    return f"{epsilon * 255:g}/255" if norm == "linf" else f"{epsilon:g}"


def render_figure(model, result):
    a = result["arrays"]
    rows, labels = [], []
    for key, entries in a["shown"].items():
        method, norm, goal = key.split("-")
        row = []
        for epsilon, adversarial, adv_logits, reconstruction, recon_logits in entries:
            eps = _epsilon_label(epsilon, norm)
            row.append(render.Cell(adversarial, header=f"x_adv ε={eps}",
                                   caption=common.captions(model, adv_logits[None])[0]))
            row.append(render.Cell(reconstruction, header="→ G",
                                   caption=common.captions(model, recon_logits[None])[0]))
        rows.append(row)
        labels.append(f"{method.upper()} {'L∞' if norm == 'linf' else 'L2'}\n{goal}")
    names = model.class_names
    subtitle = (f"{model.name}: image 0 (true {names[a['true']]}, target {names[a['target']]}); "
                "captions: Φ top-1 and p; charts over all images")
    charts = []
    table = result["tables"]["attacks"]
    for norm in NORMS:
        for metric, label in (("success_rate", "attack success"),
                              ("recon_as_adversarial", "reconstruction = adv. class")):
            series = {}
            for method in METHODS:
                for goal in GOALS:
                    series[f"{method} {goal}"] = [r[metric] for r in table if
                                                  (r["method"], r["norm"], r["goal"]) == (method, norm, goal)]
            epsilons = sorted({r["epsilon"] for r in table if r["norm"] == norm})
            charts.append(render.line_chart(
                f"{'L∞' if norm == 'linf' else 'L2'}: {label}",
                [_epsilon_label(e, norm) for e in epsilons], series, "ε", "rate"))
    return render.stack([render.title_bar(TITLE, subtitle), render.grid(rows, row_labels=labels),
                         render.stack(charts, horizontal=True)])
