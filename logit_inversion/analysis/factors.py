"""Experiment 9, factors: which nuisance factors survive in the logits?

For a dataset with ground-truth nuisances (`shapes`: shape hue, background hue, x, y, scale,
rotation), a factor regressor trained on real images (`factor_regressor`, shipped in
`savedmodels/shapes_factors`) reads each factor from the originals x_i and from their
reconstructions G(Φ(x_i), ε_i). Per factor, the reconstruction's reading is compared with
its own original's reading, against a permutation baseline: the same reconstruction compared
with the originals of the *other* images of its class.

- `recovered` = 1 − mean own error / mean baseline error. It reads 1 when every
  reconstruction shows its original's factor, 0 when a reconstruction is no closer to its own
  original than to another image of the same class (the logits kept the class, not the
  factor), and below 0 when it is farther. A constant guess is *not* the null: a
  reconstruction that draws the factor realistically but independently of the original lands
  about a third below a mean guess, which read as a negative fraction under the old metric.
- `spearman`: the rank correlation, within each class, between the reconstructions' and the
  originals' readings (the linear factors x, y and scale; hues and rotation are circular and
  have none). It reads 0 under the same null.

Both come with a seeded bootstrap 95 % interval over images and a within-class permutation
p-value. The regressor's reading of the original, not the ground truth, is the reference: the
same instrument reads both sides, so its own error does not count against the logits, and the
originals themselves score exactly 1. The ground-truth errors are kept beside it as context.
"""

import numpy as np

from logit_inversion.analysis import common, factor_regressor, render, stats

TITLE = "Nuisance factors read back from reconstructions"
GUIDE = ("A regressor trained on real shapes reads each nuisance factor from originals and "
         "their reconstructions. Recovered 1 = each reconstruction shows its own original's "
         "factor; 0 = it matches its original no better than other images of the same class "
         "(the logits dropped the factor); bars carry bootstrap 95 % intervals.")
# Factors with an order on a line, so a rank correlation is defined.
LINEAR = ("position_x", "position_y", "scale")


def factor_distances(predicted, reference, name, labels):
    """Per-image distance between two readings of factor `name`, in `FACTOR_UNITS`.

    Args:
        predicted, reference: arrays `[...]` of factor values (broadcast together).
        name: a factor of `factor_regressor.FACTOR_NAMES`.
        labels: class labels broadcastable to the same shape (rotation is measured up to each
            class's symmetry and is NaN for circles and rings).

    Returns:
        float64 array of distances: degrees of the hue circle (0–180) for hues, pixels for
        x, y and scale, degrees up to the symmetry for rotation.
    """
    a, b = np.asarray(predicted, np.float64), np.asarray(reference, np.float64)
    if name in ("shape_hue", "background_hue"):
        diff = np.abs(a - b) % 1.0
        return np.minimum(diff, 1.0 - diff) * 360.0
    if name in LINEAR:
        return np.abs(a - b)
    if name == "rotation":
        orders = factor_regressor.symmetry_orders(np.asarray(labels, np.int64)).astype(np.float64)
        k = np.where(orders > 0, orders, np.nan)
        diff = np.mod(k * (a - b), 2 * np.pi)
        return np.degrees(np.minimum(diff, 2 * np.pi - diff) / k)
    raise ValueError(f"Unknown factor; expected one of {factor_regressor.FACTOR_NAMES}. "
                     f"Received: name={name}")


def _class_groups(labels, valid):
    """Index arrays of the valid images of each class that has at least two of them."""
    groups = []
    for c in np.unique(labels[valid]):
        rows = np.nonzero(valid & (labels == c))[0]
        if rows.size >= 2:
            groups.append(rows)
    return groups


def _within_class_ranks(values, groups):
    """Ranks of `values` within each group, centred on the group's mean rank (0 elsewhere)."""
    out = np.zeros(len(values))
    for rows in groups:
        order = np.argsort(np.argsort(values[rows], kind="stable"), kind="stable")
        out[rows] = order - (rows.size - 1) / 2.0
    return out


def _correlation(a, b):
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denominator) if denominator > 0 else float("nan")


def _recovered(own, baseline):
    mean_baseline = np.mean(baseline)
    return float(1.0 - np.mean(own) / mean_baseline) if mean_baseline > 0 else float("nan")


def factor_agreement(recon, original, labels, names=None, resamples=stats.RESAMPLES, seed=0,
                     permutations=stats.RESAMPLES):
    """Per factor: how much more a reconstruction matches its own original than another
    original of its class.

    Args:
        recon: dict factor name → `[n]` readings of the reconstructions.
        original: dict factor name → `[n]` readings of their originals (same order).
        labels: int `[n]` classes; the baseline pairs each reconstruction with every other
            original of its class.
        names: factors to score (default every factor in `recon`).
        resamples: bootstrap resamples of the images for the intervals.
        seed: seed of the bootstrap and the permutations.
        permutations: within-class shuffles for the p-value.

    Returns:
        A list of rows, one per factor: `recovered` (1 − own error / baseline error) with
        `recovered_low`, `recovered_high` (bootstrap 95 %) and `recovered_p` (permutation,
        one-sided); `spearman` (within-class rank correlation, linear factors only) with
        `spearman_low`, `spearman_high`; `own_error` and `baseline_error` (mean distances, in
        `unit`); `images` (how many images the numbers rest on: those whose factor is defined
        and whose class holds at least one other such image).
    """
    labels = np.asarray(labels, np.int64)
    n = labels.shape[0]
    names = list(recon) if names is None else list(names)
    rows = []
    for index, name in enumerate(names):
        if name not in recon or name not in original:
            raise ValueError(f"Factor {name!r} is missing from the readings. Received: "
                             f"recon={sorted(recon)}, original={sorted(original)}")
        r = np.asarray(recon[name], np.float64)
        o = np.asarray(original[name], np.float64)
        if r.shape != (n,) or o.shape != (n,):
            raise ValueError(f"Expected [{n}] readings of {name}. Received: "
                             f"recon.shape={r.shape}, original.shape={o.shape}")
        own_all = factor_distances(r, o, name, labels)
        groups = _class_groups(labels, np.isfinite(own_all))
        row = {"factor": name, "unit": factor_regressor.FACTOR_UNITS.get(name, ""),
               "images": int(sum(g.size for g in groups))}
        if not groups:
            rows.append({**row, "recovered": None, "recovered_low": None, "recovered_high": None,
                         "recovered_p": None, "spearman": None, "spearman_low": None,
                         "spearman_high": None, "own_error": None, "baseline_error": None})
            continue
        # Distance of each reconstruction to every original of its class: row i, column j.
        pairs = [factor_distances(r[g][:, None], o[g][None, :], name, labels[g][:, None])
                 for g in groups]
        own = np.concatenate([np.diag(d) for d in pairs])
        baseline = np.concatenate([(d.sum(1) - np.diag(d)) / (len(d) - 1) for d in pairs])
        seed_f = seed + 1009 * index
        recovered = _recovered(own, baseline)
        low, high = stats.bootstrap_interval(_recovered, own, baseline, resamples=resamples,
                                             seed=seed_f)

        def shuffled(rng):
            drawn = np.concatenate([d[np.arange(len(d)), rng.permutation(len(d))] for d in pairs])
            return _recovered(drawn, baseline)

        p_value = stats.permutation_p_value(recovered, shuffled, permutations, seed_f)
        row.update({"recovered": recovered, "recovered_low": low, "recovered_high": high,
                    "recovered_p": p_value, "spearman": None, "spearman_low": None,
                    "spearman_high": None, "own_error": float(own.mean()),
                    "baseline_error": float(baseline.mean())})
        if name in LINEAR:
            ranks_r = _within_class_ranks(r, groups)
            ranks_o = _within_class_ranks(o, groups)
            chosen = np.concatenate(groups)
            row["spearman"] = _correlation(ranks_r[chosen], ranks_o[chosen])
            row["spearman_low"], row["spearman_high"] = stats.bootstrap_interval(
                _correlation, ranks_r[chosen], ranks_o[chosen], resamples=resamples,
                seed=seed_f + 1)
        rows.append(row)
    return rows


def run(model, data, seed=0, regressor=None, show=8, resamples=stats.RESAMPLES):
    """Factor recovery over the within-class permutation baseline, with intervals.

    Args:
        model: an `AnalysisModel` inverting a `shapes` classifier.
        data: `data.Images` with `factors` and labels (the `shapes` dataset).
        seed: noise seed, also the seed of the bootstrap and the permutations.
        regressor: `(keras model, metadata)` from `factor_regressor.load_regressor`; default
            the shipped `shapes_factors`.
        show: image pairs in the figure.
        resamples: bootstrap resamples and permutations per factor.

    Returns:
        A result dict; `tables["factors"]` one row per factor (see `factor_agreement`, plus the
        ground-truth errors `original_truth_error` and `reconstruction_truth_error`).
    """
    if data.factors is None or not (data.labels >= 0).all():
        raise ValueError(f"The factors experiment needs images with ground-truth factors and "
                         f"labels (the shapes dataset). Received: {data.source}")
    network, metadata = regressor or factor_regressor.load_regressor()
    images, labels = data.images, data.labels
    noise = model.noise(len(images), seed)
    logits, reconstructions, recon_logits = common.reconstruct(model, images, noise)
    read_original = factor_regressor.predict_factors(network, images, labels)
    read_recon = factor_regressor.predict_factors(network, reconstructions, labels)
    truth_original = factor_regressor.factor_errors(read_original, data.factors, labels)
    truth_recon = factor_regressor.factor_errors(read_recon, data.factors, labels)
    rows = factor_agreement(read_recon, read_original, labels,
                            names=factor_regressor.FACTOR_NAMES, resamples=resamples, seed=seed,
                            permutations=resamples)
    for row in rows:
        row["original_truth_error"] = truth_original[row["factor"]]
        row["reconstruction_truth_error"] = truth_recon[row["factor"]]
    summary = {}
    for r in rows:
        for key in ("recovered", "recovered_low", "recovered_high", "recovered_p", "spearman",
                    "spearman_low", "spearman_high", "images"):
            if r[key] is not None:
                summary[f"{r['factor']}_{key}"] = r[key]
    summary["images"] = len(images)
    summary["top1_agreement"] = common.agreement(model.class_logits(images, logits),
                                                 model.class_logits(reconstructions, recon_logits))
    params = {"seed": seed, "regressor": metadata.get("command"), "bootstrap_resamples": resamples,
              "permutations": resamples, "interval": "percentile bootstrap 95 % over images",
              "reference": "the regressor's reading of each reconstruction's own original",
              "baseline": "the same reconstruction against every other original of its class",
              "rotation": "scored up to each shape's symmetry; circles and rings excluded"}
    return common.result(summary, {"factors": rows}, params,
                         {"originals": images[:show], "reconstructions": reconstructions[:show],
                          "logits": logits[:show], "recon_logits": recon_logits[:show]})


def recovery_chart(title, table_by_name, size=(640, 230)):
    """Bars of `recovered` per factor with their 95 % intervals and the chance line at 0;
    `table_by_name`: series name → factor rows (as `factor_agreement` returns)."""
    categories = list(dict.fromkeys(r["factor"] for rows in table_by_name.values() for r in rows))

    def pick(rows, key):
        by_factor = {r["factor"]: r.get(key) for r in rows}
        return [np.nan if by_factor.get(f) is None else by_factor[f] for f in categories]

    series = {name: pick(rows, "recovered") for name, rows in table_by_name.items()}
    intervals = {name: list(zip(pick(rows, "recovered_low"), pick(rows, "recovered_high")))
                 for name, rows in table_by_name.items()}
    values = [v for name in series for v in series[name] + [x for pair in intervals[name]
                                                           for x in pair]]
    finite = [v for v in values if np.isfinite(v)]
    low = min([-0.2] + finite)
    return render.bar_chart(title, [c.replace("_", " ") for c in categories], series,
                            "recovered", y_max=max([1.0] + finite), y_min=low,
                            intervals=intervals, reference=(0.0, "chance"), size=size)


def render_figure(model, result):
    a = result["arrays"]
    rows = [[render.Cell(x, caption=c) for x, c in zip(a[key], common.captions(model, a[lk]))]
            for key, lk in (("originals", "logits"), ("reconstructions", "recon_logits"))]
    table = result["tables"]["factors"]
    chart = recovery_chart("recovered over the same-class baseline (1 = own original's factor, "
                           "0 = chance), 95 % intervals", {model.name: table})
    subtitle = f"{model.name}, {result['summary']['images']} images: " + ", ".join(
        f"{r['factor']} {r['recovered']:.2f}" for r in table if r["recovered"] is not None)
    return render.stack([render.title_bar(TITLE, "recovered — " + subtitle),
                         render.grid(rows, row_labels=["original", "G(Φ(x), ε)"]), chart])
