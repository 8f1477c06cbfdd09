"""Experiment 5, adversarial: attack Φ, then reconstruct from the adversarial logits.

FGSM (one step of size ε) and PGD (`steps` steps of 2.5 ε / steps, projected), each in an L∞
and an L2 ball, untargeted (away from the true class) and targeted (towards class y + 1),
over a sweep of ε in [0, 1] pixel units. If the reconstruction shows the adversarial class,
the logits really encode it (the attack changed what Φ "sees"); if it shows the true class,
the logits still carry the original picture.

Only successful attacks count: an attack succeeds on an image when it changes Φ's top-1 (to
the target, for a targeted attack). A reconstruction of an image whose top-1 did not move
shows Φ's unchanged class whatever the logits keep, so it says nothing about wrong logits.
Where no attack succeeded the row reads "not tested: no attack succeeded" instead of a score.

Φ judging the reconstructions is circular (the inverter was trained to make Φ agree with its
input logits), so a second, independent classifier (`second_classifier`, e.g. one trained with
another seed or on other data) can judge them too; both readings are reported.

Numbers per (method, norm, goal, ε): attack success rate and count; among the successful
attacks, the fraction of reconstructions Φ classifies as the adversarial class (with a 95 %
Wilson interval) and as the true class, and the same as read by the second classifier; the
pixel distance from the clean reconstruction (same noise), over all images.
"""

import numpy as np
import tensorflow as tf

from logit_inversion.analysis import common, render, stats

TITLE = "Adversarial logits, reconstructed"
GUIDE = ("Rows: attacks on Φ; per ε, the adversarial image and G(Φ(x_adv), ε). If the "
         "reconstruction shows the adversarial class, the attack changed what the logits encode.")
LINF_EPSILONS = (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
L2_EPSILONS = (0.0, 0.25, 0.5, 1.0, 2.0)
METHODS = ("fgsm", "pgd")
NORMS = ("linf", "l2")
GOALS = ("untargeted", "targeted")
NOT_TESTED = "not tested: no attack succeeded"


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
        max_images=64, second_classifier=None, second_name=None):
    """Every attack at every ε on the first `max_images` images, then reconstruction.

    Args:
        model: an `AnalysisModel` with gradients (`differentiable`).
        data: `data.Images`; labels give the true class (else Φ's clean top-1).
        seed: noise seed.
        linf_epsilons, l2_epsilons: radii in [0, 1] pixel units.
        steps: PGD steps.
        max_images: images attacked.
        second_classifier: optional callable, float images `[B, R, R, 3]` in [-1, 1] → logits
            over the same K classes: an independent judge of the reconstructions' class.
        second_name: its label for the tables.

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
    clean = common.top1(logits)
    true = data.labels if (data.labels >= 0).all() else clean
    target = (true + 1) % model.num_classes
    noise = model.noise(len(images), seed)
    clean_reconstructions = model.generate(logits, noise)
    second = None
    if second_classifier is not None:
        second = _second_judge(second_classifier, images, model.num_classes)
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
                    # Success: Φ's top-1 moved (to the target, for a targeted attack).
                    success = adv_classes != clean
                    if goal == "targeted":
                        success &= adv_classes == target
                    delta = (adversarial - images).astype(np.float64) / 2
                    size = (np.abs(delta).max(axis=(1, 2, 3)) if norm == "linf"
                            else np.sqrt((delta ** 2).sum(axis=(1, 2, 3))))
                    row = {"method": method, "norm": norm, "goal": goal,
                           "epsilon": float(epsilon), "images": len(images),
                           "successes": int(success.sum()),
                           "success_rate": float(success.mean())}
                    row.update(_judged(recon_classes, adv_classes, true, success, "recon"))
                    if second is not None:
                        row.update(_judged(second(reconstructions), adv_classes, true, success,
                                           "second_recon"))
                        # Whether the attack transfers: the second classifier's view of x_adv.
                        row["second_adv_as_adversarial"] = _rate(
                            second(adversarial)[success] == adv_classes[success])
                    row["status"] = "tested" if success.any() else NOT_TESTED
                    row["recon_pixel_distance"] = float(common.pixel_distance(
                        reconstructions, clean_reconstructions).mean())
                    row["perturbation"] = float(size.mean())
                    rows.append(row)
                    shown[key].append((epsilon, adversarial[0], adv_logits[0],
                                       reconstructions[0], model.classify(reconstructions[:1])[0]))
    pgd = [r for r in rows if r["method"] == "pgd" and r["epsilon"] > 0]
    strongest = {f"{r['norm']}_{r['goal']}": r for r in pgd
                 if r["epsilon"] == max(x["epsilon"] for x in pgd if x["norm"] == r["norm"])}
    summary = {"images": len(images)}
    if second is not None:
        summary["second_classifier"] = second_name or "second"
    for key, r in strongest.items():
        prefix = f"pgd_{key}_eps{r['epsilon']:.3g}"
        summary[f"{prefix}_success"] = r["success_rate"]
        summary[f"{prefix}_successes"] = r["successes"]
        summary[f"{prefix}_status"] = r["status"]
        for judge in ("recon", "second_recon"):
            for suffix in ("as_adversarial", "as_adversarial_low", "as_adversarial_high"):
                if f"{judge}_{suffix}" in r:
                    summary[f"{prefix}_{judge}_{suffix}"] = r[f"{judge}_{suffix}"]
    params = {"seed": seed, "steps": steps, "linf_epsilons": list(linf_epsilons),
              "l2_epsilons": list(l2_epsilons), "epsilon_units": "[0, 1] pixels",
              "target": "(true class + 1) mod K",
              "success": "Φ's top-1 on x_adv differs from its top-1 on x (and, targeted, is the "
                         "target); reconstruction rates count successful attacks only",
              "interval": "Wilson 95 % over the successful attacks",
              "second_classifier": second_name if second is not None else None}
    return common.result(summary, {"attacks": rows}, params,
                         {"original": images[0], "logits": logits[0], "shown": shown,
                          "true": int(true[0]), "target": int(target[0])})


def _rate(hits):
    return float(np.mean(hits)) if np.size(hits) else None


def _judged(classes, adv_classes, true, success, judge):
    """Among the successful attacks, how often `classes` (a judge's top-1 of the
    reconstructions) is the adversarial class, with its Wilson interval, and the true class."""
    hits = classes[success] == adv_classes[success]
    low, high = stats.proportion_interval(int(hits.sum()), int(success.sum()))
    return {f"{judge}_as_adversarial": _rate(hits),
            f"{judge}_as_adversarial_low": low if success.any() else None,
            f"{judge}_as_adversarial_high": high if success.any() else None,
            f"{judge}_as_true": _rate(classes[success] == true[success])}


def _second_judge(classifier, images, num_classes):
    """The second classifier as `images → top-1 classes`, checked to have Φ's K classes."""
    probe = np.asarray(classifier(images[:1]))
    if probe.ndim != 2 or probe.shape[1] != num_classes:
        raise ValueError(f"The second classifier must give logits over Φ's {num_classes} "
                         f"classes. Received: logits of shape {probe.shape}")
    return lambda x: common.top1(np.asarray(classifier(x)))


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
    table = result["tables"]["attacks"]
    tested = sum(r["status"] != NOT_TESTED for r in table)
    subtitle = (f"{model.name}: image 0 (true {names[a['true']]}, target {names[a['target']]}); "
                "captions: Φ top-1 and p; reconstruction rates over successful attacks only "
                f"(no point: {NOT_TESTED}; {len(table) - tested} of {len(table)} rows)")
    charts = []
    for norm in NORMS:
        for metric, label in (("success_rate", "attack success"),
                              ("recon_as_adversarial", "recon. = adv. class (successes)")):
            series = {}
            for method in METHODS:
                for goal in GOALS:
                    series[f"{method} {goal}"] = [
                        np.nan if r[metric] is None else r[metric] for r in table
                        if (r["method"], r["norm"], r["goal"]) == (method, norm, goal)]
            epsilons = sorted({r["epsilon"] for r in table if r["norm"] == norm})
            charts.append(render.line_chart(
                f"{'L∞' if norm == 'linf' else 'L2'}: {label}",
                [_epsilon_label(e, norm) for e in epsilons], series, "ε", "rate"))
    return render.stack([render.title_bar(TITLE, subtitle), render.grid(rows, row_labels=labels),
                         render.stack(charts, horizontal=True)])
