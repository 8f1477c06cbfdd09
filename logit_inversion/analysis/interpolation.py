"""Experiment 4, interpolation: reconstructions along z(α) = (1 − α) Φ(a) + α Φ(b).

Pairs of images of the same class and of different classes (by the classifier's top-1), the
noise fixed to image a's along the path. Numbers per pair: the α where the reconstruction's
top-1 first changes (and where the interpolated logits' own argmax does), how many times it
changes, and the mean pixel step between neighbouring frames.
"""

import numpy as np

from logit_inversion.analysis import common, render

TITLE = "Interpolation between logits"
GUIDE = ("Each row walks from image a's logits (left) to image b's (right) with the noise fixed. "
         "A smooth row with one class switch means the logit space is traversable; the "
         "switch α is in the table.")


def choose_pairs(classes, same=3, different=3):
    """Index pairs `(a, b)`: up to `same` with equal classes (distinct classes first) and up
    to `different` with unequal ones, in image order."""
    same_pairs, different_pairs, seen = [], [], set()
    first = {}
    for i, c in enumerate(classes):
        if c in first and c not in seen and len(same_pairs) < same:
            same_pairs.append((first[c], i))
            seen.add(c)
        first.setdefault(c, i)
    for i in range(len(classes) - 1):
        if len(different_pairs) == different:
            break
        j = i + 1
        if classes[i] != classes[j] and all(i not in p and j not in p for p in different_pairs):
            different_pairs.append((i, j))
    return same_pairs + different_pairs


def _switch(classes, alphas):
    changed = np.nonzero(classes != classes[0])[0]
    return float(alphas[changed[0]]) if changed.size else None


def run(model, data, seed=0, steps=9, same=3, different=3):
    """Interpolates the logits of chosen image pairs in `steps` steps (α from 0 to 1).

    Returns:
        A result dict; `tables["pairs"]` has one row per pair.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2. Received: steps={steps}")
    images = data.images
    logits = model.classify(images)
    pairs = choose_pairs(list(common.top1(logits)), same, different)
    if not pairs:
        raise ValueError(f"Need at least two images to interpolate. Received: {len(images)} images")
    alphas = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    noise = model.noise(len(images), seed)
    rows, frames, frame_logits = [], [], []
    for a, b in pairs:
        path = (1 - alphas)[:, None] * logits[a] + alphas[:, None] * logits[b]
        reconstructions = model.generate(path, np.repeat(noise[a:a + 1], steps, 0))
        recon_logits = model.classify(reconstructions)
        step = common.pixel_distance(reconstructions[1:], reconstructions[:-1])
        recon_classes = common.top1(recon_logits)
        rows.append({
            "a": int(a), "b": int(b),
            "class_a": model.class_names[common.top1(logits[a:a + 1])[0]],
            "class_b": model.class_names[common.top1(logits[b:b + 1])[0]],
            "same_class": bool(common.top1(logits[a:a + 1])[0] == common.top1(logits[b:b + 1])[0]),
            "switch_alpha": _switch(recon_classes, alphas),
            "logit_switch_alpha": _switch(common.top1(path), alphas),
            "class_changes": int(np.sum(recon_classes[1:] != recon_classes[:-1])),
            "mean_pixel_step": float(step.mean()),
            "max_pixel_step": float(step.max()),
        })
        frames.append(reconstructions)
        frame_logits.append(recon_logits)
    different_rows = [r for r in rows if not r["same_class"]]
    same_rows = [r for r in rows if r["same_class"]]
    switches = [r["switch_alpha"] for r in different_rows if r["switch_alpha"] is not None]
    summary = {
        "pairs_same_class": len(same_rows), "pairs_different_class": len(different_rows),
        "mean_switch_alpha_different": float(np.mean(switches)) if switches else None,
        "switched_different": (float(len(switches) / len(different_rows))
                               if different_rows else None),
        "no_change_same": (float(np.mean([r["class_changes"] == 0 for r in same_rows]))
                           if same_rows else None),
        "mean_pixel_step": float(np.mean([r["mean_pixel_step"] for r in rows])),
    }
    return common.result(summary, {"pairs": rows}, {"seed": seed, "steps": steps},
                         {"alphas": alphas, "pairs": np.array(pairs), "originals": images,
                          "logits": logits, "frames": np.stack(frames),
                          "frame_logits": np.stack(frame_logits)})


def render_figure(model, result):
    a = result["arrays"]
    rows, labels = [], []
    for (i, j), frames, frame_logits, row in zip(a["pairs"], a["frames"], a["frame_logits"],
                                                 result["tables"]["pairs"]):
        cells = [render.Cell(a["originals"][i], caption=common.captions(model, a["logits"][i:i + 1])[0])]
        cells += [render.Cell(f, caption=c) for f, c in zip(frames, common.captions(model, frame_logits))]
        cells.append(render.Cell(a["originals"][j], caption=common.captions(model, a["logits"][j:j + 1])[0]))
        rows.append(cells)
        switch = row["switch_alpha"]
        labels.append(("same class" if row["same_class"] else "different") +
                      f"\nswitch α={'none' if switch is None else f'{switch:.2f}'}")
    headers = ["image a"] + [f"α={x:.2f}" for x in a["alphas"]] + ["image b"]
    s = result["summary"]
    subtitle = f"{model.name}: mean pixel step {s['mean_pixel_step']:.3f}; noise of image a"
    return render.stack([render.title_bar(TITLE, subtitle),
                         render.grid(rows, row_labels=labels, column_headers=headers)])
