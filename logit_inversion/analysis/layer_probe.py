"""Linear probe: how much of each `shapes` nuisance factor a classifier layer keeps.

The inverter-based factor audit (`factors`, on a `conditioning.layer` twin of an inverter)
asks what a *generator* can draw back from a vector. This probe asks the cheaper question
about the vector itself: ridge regression from the layer's output to each factor, fitted on
training images and scored (R²) on test images. Hues are circular, so each is regressed as
(cos, sin) and its R² is the mean of the two.

    python -m logit_inversion.analysis.layer_probe --classifier=shapes \
        --layers=logits,penultimate --output=runs/layer_probe.json
"""

import argparse
import json
import time

import numpy as np

FACTORS = ("shape_hue", "background_hue", "position_x", "position_y", "scale")
CIRCULAR = ("shape_hue", "background_hue")


def factor_targets(factors):
    """`{name: [n]}` (hues in turns) → `[n, columns]` regression targets, hues as cos/sin."""
    columns = []
    for name in FACTORS:
        value = np.asarray(factors[name], np.float64)
        if name in CIRCULAR:
            columns += [np.cos(2 * np.pi * value), np.sin(2 * np.pi * value)]
        else:
            columns.append(value)
    return np.stack(columns, 1)


def ridge_r2(train_x, train_y, test_x, test_y, alpha=1.0):
    """Test R² per target column of a ridge regression on standardised inputs: `[n, d]`,
    `[n, t]`, `[m, d]`, `[m, t]` → `[t]`. 1 = predicted exactly; ≤ 0 = no better than the
    test mean."""
    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a = np.c_[(train_x - mean) / std, np.ones(len(train_x))]
    b = np.c_[(test_x - mean) / std, np.ones(len(test_x))]
    weights = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ train_y)
    residual = ((b @ weights - test_y) ** 2).sum(0)
    return 1.0 - residual / ((test_y - test_y.mean(0)) ** 2).sum(0)


def per_factor(r2):
    """Column R² `[columns]` → `{factor: R²}` (a hue's two columns averaged)."""
    out, i = {}, 0
    for name in FACTORS:
        width = 2 if name in CIRCULAR else 1
        out[name] = float(np.mean(r2[i:i + width]))
        i += width
    return out


def _load(split, num_images, data_dir):
    from logit_inversion.data.pipeline import build_dataset
    ds = build_dataset("shapes", split, resolution=32, batch_size=250, training=False,
                       data_dir=data_dir, extra_features=FACTORS)
    images, factors = [], {k: [] for k in FACTORS}
    for batch in ds.take(max(num_images // 250, 1)):
        images.append(batch["image"].numpy())
        for k in FACTORS:
            factors[k].append(batch[k].numpy())
    return np.concatenate(images), {k: np.concatenate(v) for k, v in factors.items()}


def probe(classifier="shapes", layers=("logits", "penultimate"), train_images=5000,
          test_images=2000, data_dir=None):
    """R² of each factor from each layer of `classifier` on `shapes`; one row per layer."""
    from logit_inversion.classifiers.features import load_feature_extractor
    start = time.perf_counter()
    train_x, train_f = _load("train", train_images, data_dir)
    test_x, test_f = _load("test", test_images, data_dir)
    rows = {}
    for layer in layers:
        extractor = load_feature_extractor(classifier, layer=layer)

        def vectors(x):
            return np.concatenate([extractor(x[i:i + 500]).numpy()
                                   for i in range(0, len(x), 500)])
        r2 = ridge_r2(vectors(train_x), factor_targets(train_f), vectors(test_x),
                      factor_targets(test_f))
        rows[layer] = {"width": int(extractor.output_dim), **per_factor(r2)}
    return {"classifier": classifier, "rows": rows, "train_images": len(train_x),
            "test_images": len(test_x), "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", default="shapes")
    parser.add_argument("--layers", default="logits,penultimate")
    parser.add_argument("--train_images", type=int, default=5000)
    parser.add_argument("--test_images", type=int, default=2000)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    result = probe(args.classifier, [x for x in args.layers.split(",") if x],
                   args.train_images, args.test_images, args.data_dir)
    print("layer          width " + " ".join(f"{k:>14}" for k in FACTORS))
    for layer, row in result["rows"].items():
        print(f"{layer:<14} {row['width']:>5} "
              + " ".join(f"{row[k]:>14.2f}" for k in FACTORS))
    if args.output:
        from logit_inversion import files
        files.write_atomic(args.output, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
