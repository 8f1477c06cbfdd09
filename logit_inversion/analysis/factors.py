"""Experiment 9, factors: which nuisance factors survive in the logits?

For a dataset with ground-truth nuisances (`shapes`: shape hue, background hue, x, y, scale,
rotation), a factor regressor trained on real images (`factor_regressor`, shipped in
`savedmodels/shapes_factors`) reads each factor from
- the originals (the ceiling: how well the regressor reads real images),
- the reconstructions G(Φ(x), ε) (what the logits kept),
- nothing: a constant prediction (chance).

Per factor: the three errors, and `recovered` = (chance − reconstruction) / (chance −
original): 1 when the reconstruction shows the factor as well as the original, 0 when it is
no better than guessing.
"""

import numpy as np

from logit_inversion.analysis import common, factor_regressor, render

TITLE = "Nuisance factors read back from reconstructions"
GUIDE = ("A regressor trained on real shapes reads each nuisance factor from originals (ceiling) "
         "and reconstructions, against a constant guess (chance). Recovered 0 = the logits "
         "dropped the factor; 1 = they kept it.")


def run(model, data, seed=0, regressor=None, show=8):
    """Factor errors on originals, reconstructions and a constant prediction.

    Args:
        model: an `AnalysisModel` inverting a `shapes` classifier.
        data: `data.Images` with `factors` and labels (the `shapes` dataset).
        seed: noise seed.
        regressor: `(keras model, metadata)` from `factor_regressor.load_regressor`; default
            the shipped `shapes_factors`.
        show: image pairs in the figure.

    Returns:
        A result dict; `tables["factors"]` one row per factor.
    """
    if data.factors is None or not (data.labels >= 0).all():
        raise ValueError(f"The factors experiment needs images with ground-truth factors and "
                         f"labels (the shapes dataset). Received: {data.source}")
    network, metadata = regressor or factor_regressor.load_regressor()
    images, labels = data.images, data.labels
    noise = model.noise(len(images), seed)
    logits, reconstructions, recon_logits = common.reconstruct(model, images, noise)
    if "constant_prediction" in metadata:
        chance = {k: np.full(len(images), v) for k, v in metadata["constant_prediction"].items()}
    else:
        chance = factor_regressor.constant_prediction(data.factors, len(images))
    errors = {
        "original": factor_regressor.factor_errors(
            factor_regressor.predict_factors(network, images, labels), data.factors, labels),
        "reconstruction": factor_regressor.factor_errors(
            factor_regressor.predict_factors(network, reconstructions, labels), data.factors, labels),
        "chance": factor_regressor.factor_errors(chance, data.factors, labels),
    }
    rows = []
    for name in factor_regressor.FACTOR_NAMES:
        original, recon, guess = (errors[k][name] for k in ("original", "reconstruction", "chance"))
        gap = guess - original
        rows.append({"factor": name, "unit": factor_regressor.FACTOR_UNITS[name],
                     "original": original, "reconstruction": recon, "chance": guess,
                     "recovered": float((guess - recon) / gap) if gap > 0 else None})
    summary = {f"{r['factor']}_recovered": r["recovered"] for r in rows}
    summary["images"] = len(images)
    summary["top1_agreement"] = common.agreement(model.class_logits(images, logits),
                                                 model.class_logits(reconstructions, recon_logits))
    params = {"seed": seed, "regressor": metadata.get("command"),
              "rotation": "scored up to each shape's symmetry; circles and rings excluded"}
    return common.result(summary, {"factors": rows}, params,
                         {"originals": images[:show], "reconstructions": reconstructions[:show],
                          "logits": logits[:show], "recon_logits": recon_logits[:show]})


def render_figure(model, result):
    a = result["arrays"]
    rows = [[render.Cell(x, caption=c) for x, c in zip(a[key], common.captions(model, a[lk]))]
            for key, lk in (("originals", "logits"), ("reconstructions", "recon_logits"))]
    table = result["tables"]["factors"]
    series = {kind: [r[kind] / r["chance"] if r["chance"] else np.nan for r in table]
              for kind in ("original", "reconstruction", "chance")}
    chart = render.bar_chart("error ÷ chance error, per factor (lower = factor kept)",
                             [r["factor"].replace("_", " ") for r in table], series,
                             "error/chance", y_max=1.3)
    subtitle = f"{model.name}: " + ", ".join(
        f"{r['factor']} {r['recovered']:.2f}" for r in table if r["recovered"] is not None)
    return render.stack([render.title_bar(TITLE, "recovered — " + subtitle),
                         render.grid(rows, row_labels=["original", "G(Φ(x), ε)"]), chart])
