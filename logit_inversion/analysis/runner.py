"""`run_analyses`: models + experiment names → `NAME.png`, `NAME.json` (and `index.html`).

What `bin/analyze` calls. Everything that can be checked is checked before anything is
written: the experiment names, the counts, the model folders, whether each requested
experiment applies to the model and data (with `all`, experiments that do not apply, e.g.
`factors` on a dataset without factors, are skipped and listed on the page instead).
"""

import os
import time

import numpy as np
import tensorflow as tf

from logit_inversion.analysis import (adversarial, compare, factor_regressor, factors, interpolation,
                                      invariance, manipulations, misclassified, ood,
                                      reconstructions, report)
from logit_inversion.analysis.data import load_images
from logit_inversion.serving.model import open_model
from logit_inversion.models import noise_use

MODULES = {
    "reconstructions": reconstructions, "invariance": invariance,
    "manipulations": manipulations, "interpolation": interpolation,
    "adversarial": adversarial, "misclassified": misclassified, "ood": ood,
    "compare": compare, "factors": factors,
}
EXPERIMENTS = tuple(MODULES)


def parse_experiments(spec):
    """`"all"` or `"a,b"` → a list of experiment names, checked."""
    names = list(EXPERIMENTS) if spec.strip() == "all" else [
        name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODULES]
    if not names or unknown:
        raise ValueError(f"--experiment must be 'all' or a comma-separated list of "
                         f"{', '.join(EXPERIMENTS)}. Received: experiment={spec}")
    return list(dict.fromkeys(names))


def run_analyses(model_paths, experiments, output_dir, *, dataset=None, split="test",
                 data_dir=None, num_images=64, seed=0, scan_images=1000, factor_images=1000,
                 ood_dataset=None, ood_split="test", ood_data_dir=None, second_classifier=None,
                 regressor="shapes_factors", command=None, log=print):
    """Runs experiments on the first model (`compare` on all of them) and writes the results.

    Args:
        model_paths: workdirs or exported SavedModels; per-model experiments use the first.
        experiments: `"all"`, a comma-separated string or a list of names.
        output_dir: where `NAME.png`, `NAME.json` (and, for `all`, `index.html`) go.
        dataset, split, data_dir: the images; default the first workdir's dataset
            (`shapes` for an export) and data_dir.
        num_images: images per experiment (misclassified scans `scan_images`; factors
            uses `factor_images`).
        seed: noise seed.
        ood_dataset, ood_split, ood_data_dir: optional other dataset or image folder for `ood`.
        second_classifier: optional classifier handle that judges the reconstructions beside Φ
            in `misclassified` and `adversarial`.
        regressor: factor regressor name or folder for `factors`.
        command: the command line, recorded in every JSON.
        log: progress printer (one line per experiment with its time).

    Returns:
        Dict from experiment name to its JSON record (or `{"skipped": reason}`).
    """
    everything = isinstance(experiments, str) and experiments.strip() == "all"
    names = parse_experiments(experiments) if isinstance(experiments, str) else list(experiments)
    model_paths = [os.fspath(p) for p in ([model_paths] if isinstance(model_paths, str)
                                          else model_paths)]
    for key, value in (("num_images", num_images), ("scan_images", scan_images),
                       ("factor_images", factor_images)):
        if value < 1:
            raise ValueError(f"{key} must be positive. Received: {key}={value}")
    if not model_paths:
        raise ValueError("At least one --model is needed. Received: model=[]")
    for path in model_paths:
        if not os.path.isdir(path):
            raise ValueError(f"--model must be a bin/train workdir or an exported SavedModel "
                             f"folder. Received: model={path}")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir must be a folder. Received: output_dir={output_dir}")

    models = [open_model(path) for path in model_paths]
    _unique_names(models)
    model = models[0]
    dataset = dataset or model.dataset or "shapes"
    data_dir = data_dir if data_dir is not None else model.data_dir
    data = load_images(dataset, split, model.resolution, num_images, data_dir)
    for m in models:
        if m.kind == "export" and data.label_names and len(data.label_names) == m.num_classes:
            m.class_names = tuple(data.label_names)

    skipped = {name: reason for name in names
               if (reason := _not_applicable(name, model, data, regressor))}
    if skipped and not everything:
        name, reason = next(iter(skipped.items()))
        raise ValueError(f"Experiment {name} cannot run: {reason}. Received: experiment={name}")
    external = None
    if ood_dataset and "ood" in names:
        external = load_images(ood_dataset, ood_split, model.resolution, num_images,
                               ood_data_dir, minimum=1)
    os.makedirs(output_dir, exist_ok=True)
    diversity = check_noise_use(models, data, seed, log)

    meta = {"model": [m.describe() for m in models], "data": data.source, "seed": seed,
            "command": command, "epsilon_diversity": diversity}
    entries, records = [], {}
    todo = [name for name in names if name not in skipped]
    for name in names:
        module = MODULES[name]
        if name in skipped:
            log(f"[ -/{len(todo)}] {name}: skipped ({skipped[name]})")
            entries.append({"name": name, "title": module.TITLE, "guide": module.GUIDE,
                            "error": skipped[name]})
            records[name] = {"skipped": skipped[name]}
            continue
        start = time.time()
        result, figure = _run_one(name, models, data, seed, dict(
            dataset=dataset, split=split, data_dir=data_dir, scan_images=scan_images,
            factor_images=factor_images, external=external,
            second_classifier=second_classifier, regressor=regressor))
        png, _ = report.write_experiment(output_dir, name, result, figure, meta)
        record = report.record(name, result, meta)
        records[name] = record
        entries.append({"name": name, "title": module.TITLE, "guide": module.GUIDE,
                        "png": open(png, "rb").read(), "record": record})
        log(f"[{todo.index(name) + 1}/{len(todo)}] {name}: {time.time() - start:.1f} s → {png}")
    if everything:
        page_meta = {"models": ", ".join(m.path for m in models), "data": data.source,
                     "seed": seed, "command": command or ""}
        path = os.path.join(output_dir, "index.html")
        report.atomic_write(path, report.index_html(entries, page_meta))
        log(f"index: {path}")
    return records


def check_noise_use(models, data, seed=0, log=print):
    """The collapse check, before any experiment: a warning line for every model whose
    ε-diversity on `data` is below `noise_use.THRESHOLD` (its invariance figures would show
    the generator's collapse, not what Φ ignores). Returns {model name: ε-diversity}."""
    values = {}
    for m in models:
        if m.resolution != data.images.shape[1]:   # not scored on these images
            continue
        _, values[m.name] = invariance.noise_use_of(m, data, seed)
        if noise_use.ignores_noise(values[m.name]):
            log(f"warning: {m.name}: {noise_use.warning(values[m.name])}")
    return values


def _run_one(name, models, data, seed, options):
    """Runs experiment `name`; returns `(result, figure)`."""
    model = models[0]
    module = MODULES[name]
    if name == "compare":
        result = compare.run(models, data, seed=seed)
        return result, compare.render_figure(models, result)
    if name == "misclassified":
        pool = load_images(options["dataset"], options["split"], model.resolution,
                           max(options["scan_images"], len(data)), options["data_dir"],
                           minimum=len(data))
        second, second_name = None, None
        if options["second_classifier"]:
            second, second_name = _classifier_fn(options["second_classifier"]), options["second_classifier"]
        result = misclassified.run(model, pool, seed=seed, second_classifier=second,
                                   second_name=second_name)
    elif name == "factors":
        pool = load_images(options["dataset"], options["split"], model.resolution,
                           max(options["factor_images"], len(data)), options["data_dir"],
                           minimum=len(data))
        result = factors.run(model, pool, seed=seed,
                             regressor=factor_regressor.load_regressor(options["regressor"]))
    elif name == "adversarial" and options["second_classifier"]:
        result = adversarial.run(model, data, seed=seed,
                                 second_classifier=_classifier_fn(options["second_classifier"]),
                                 second_name=options["second_classifier"])
    elif name == "ood":
        result = ood.run(model, data, seed=seed, external=options["external"])
    else:
        result = module.run(model, data, seed=seed)
    return result, module.render_figure(model, result)


def _not_applicable(name, model, data, regressor):
    """Why experiment `name` cannot run on this model and data, or None."""
    labelled = bool((data.labels >= 0).all())
    if name == "adversarial" and not model.differentiable:
        return (f"the export at {model.path} has no classify_float signature (re-export it "
                "with bin/export)")
    if name == "misclassified" and not labelled:
        return f"{data.source} has no labels"
    if name == "factors":
        if data.factors is None:
            return f"{data.source} has no ground-truth nuisance factors (use --dataset=shapes)"
        try:
            factor_regressor.load_regressor(regressor)
        except ValueError as error:
            return str(error)
    return None


def _unique_names(models):
    """Distinct figure labels: a folder name seen twice gets its parent's name too."""
    names = [m.name for m in models]
    for m in models:
        if names.count(m.name) > 1:
            m.name = os.path.join(os.path.basename(os.path.dirname(os.path.normpath(m.path))), m.name)


def _classifier_fn(handle):
    """A classifier handle → callable, float images in [-1, 1] → numpy logits."""
    from logit_inversion.classifiers import load_classifier  # pylint: disable=import-outside-toplevel

    classifier = load_classifier(handle)
    call = tf.function(classifier.__call__, reduce_retracing=True)
    return lambda images: np.concatenate(
        [np.asarray(call(tf.constant(images[i:i + 256], tf.float32)))
         for i in range(0, len(images), 256)])
