"""Every metric of this package, for several models, on the same images: `bin/evaluate`.

`evaluate(models, dataset=..., split=..., num_images=...)` reads the first `num_images` images
of a split and scores every model with the same metrics, the same identification candidates
and the same noise seeds. Each model inverts the logits of the classifier it was trained on
and is scored by that classifier (an inverter fed another classifier's logits reconstructs
from a vector it never saw); the logits of each classifier are computed once. Only the feature
space of FD and KID is shared by all rows, and named. `write_results` writes `metrics.json`
and `metrics.md` (a table with each row's classifier).
"""

import json
import math
import os
import sys
import time

import tensorflow as tf

from logit_inversion.evaluation import (classification, distribution, diversity,
                                        identification, image_quality)
from logit_inversion.evaluation.baselines import optimization
from logit_inversion.evaluation.models import load_model
from logit_inversion.models import metrics as metrics_lib

# Columns of the Markdown table: (key in a model's results, header, format).
COLUMNS = (
    ("top1_agreement", "top-1 agr.", "{:.3f}"),
    ("top5_agreement", "top-5 agr.", "{:.3f}"),
    ("label_accuracy", "acc. Φ(x̂)", "{:.3f}"),
    ("logit_cosine", "logit cos", "{:.3f}"),
    ("logit_relative_l2", "logit rel. L2", "{:.3f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("ident_l2", "ident. L2", "{:.3f}"),
    ("ident_l2_reverse", "ident. L2 rev.", "{:.3f}"),
    ("ident_ssim", "ident. SSIM", "{:.3f}"),
    ("ident_ssim_reverse", "ident. SSIM rev.", "{:.3f}"),
    ("fd", "FD", "{:.3g}"),
    ("kid", "KID", "{:.3g}"),
    ("diversity", "diversity", "{:.3f}"),
    ("images_per_second", "images/s", "{:.3g}"),
)


def _log(message):
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


def load_images(dataset, split, num_images, resolution, data_dir=None):
    """The first `num_images` images of a split, in order: `[n, R, R, 3]` in [-1, 1], labels
    int32 `[n]`."""
    from logit_inversion.data.pipeline import build_dataset

    if num_images < 2:
        raise ValueError(f"num_images must be ≥ 2. Received: num_images={num_images}")
    batch = min(num_images, 250)
    ds = build_dataset(dataset, split, resolution=resolution, batch_size=batch,
                       data_dir=data_dir, training=False)
    images, labels, count = [], [], 0
    for example in ds:
        images.append(example["image"])
        labels.append(example["label"])
        count += int(example["image"].shape[0])
        if count >= num_images:
            break
    if count < num_images:
        raise ValueError(f"Split {split!r} of {dataset!r} has fewer than {num_images} images "
                         f"(in batches of {batch}). Received: num_images={num_images}")
    return tf.concat(images, 0)[:num_images], tf.concat(labels, 0)[:num_images]


def feature_space(classifier_handle, layer="penultimate"):
    """(name, function images → features `[n, F]`) for FD and KID."""
    from logit_inversion.classifiers import features

    extractor = features.load_feature_extractor(classifier_handle, layer)
    return f"{layer} of {classifier_handle} ({extractor.output_dim}-d)", extractor


def _in_batches(fn, images, batch=250):
    return tf.concat([fn(images[i:i + batch]) for i in range(0, len(images), batch)], 0)


def score(images, labels, logits, reconstructions, classifier, features, candidates,
          real_features):
    """The metrics of one model's reconstructions `[n, R, R, 3]` of `images`; a dict of floats."""
    recon_logits = _in_batches(classifier, reconstructions)
    k5 = min(5, int(logits.shape[-1]))
    result = {
        "top1_agreement": metrics_lib.top1_agreement(logits, recon_logits),
        "top5_agreement": classification.top_k_agreement(logits, recon_logits, k5),
        "logit_cosine": classification.logit_cosine(logits, recon_logits),
        "logit_relative_l2": classification.logit_relative_l2(logits, recon_logits),
    }
    if bool(tf.reduce_all(labels >= 0)):
        result["label_accuracy"] = classification.label_accuracy(recon_logits, labels)
    same_size = images.shape == reconstructions.shape
    if same_size:
        result["psnr"] = tf.reduce_mean(image_quality.psnr(images, reconstructions))
        result["ssim"] = tf.reduce_mean(image_quality.ssim(images, reconstructions))
        if min(images.shape[1:3]) >= image_quality.ms_ssim_min_size():
            result["ms_ssim"] = tf.reduce_mean(image_quality.ms_ssim(images, reconstructions))
        ident = identification.identification(images, reconstructions, None,
                                              candidates=candidates)
        result.update({f"ident_{k}": v for k, v in ident.items() if k != "chance"})
    fake_features = _in_batches(features, reconstructions)
    result["fd"] = distribution.frechet_distance(real_features, fake_features)
    result["kid"] = distribution.kernel_inception_distance(real_features, fake_features)
    return {k: float(v) for k, v in result.items()}


def same_classifier(a, b):
    """Whether two classifier handles name the same classifier: a registry name and its
    folder, or two spellings of one folder, are the same."""
    return _canonical(a) == _canonical(b)


def _canonical(handle):
    from logit_inversion.classifiers import REGISTRY

    handle = str(handle)
    if handle in REGISTRY:
        handle = str(REGISTRY[handle][0])
    if os.path.exists(handle):
        return os.path.realpath(handle)
    return handle


def evaluate(models, dataset="shapes", split="test", num_images=500, data_dir=None,
             classifier=None, feature_classifier=None, feature_layer="penultimate",
             num_distractors=9, diversity_images=16, diversity_samples=4, seed=0):
    """Scores each model on the same `num_images` images; returns the results dict.

    Args:
        models: model specs (see `evaluation.models`): workdirs, exports, `optimize:...`.
        dataset, split, data_dir: where the images come from (TFDS name or image folder).
        num_images: how many images, from the start of the split.
        classifier: handle of Φ for the models that do not record theirs (an export without
            metadata, the optimization baseline); default: the first classifier a model
            records. A model that records another classifier is refused rather than fed
            logits it was not trained on.
        feature_classifier, feature_layer: the feature space of FD and KID, shared by every
            row (default: the default Φ's penultimate layer).
        num_distractors: N of instance identification (chance = 1/(N+1)).
        diversity_images, diversity_samples: diversity is measured on the first
            `diversity_images` logit vectors with `diversity_samples` noise draws each.
        seed: seeds the identification candidates and the noise.

    Returns:
        A dict: the settings, `classifier` (the default Φ), `models` (spec → metrics, each
        with the `classifier` whose logits it inverted and that scored it) and
        `feature_space` (the shared FD/KID space).
    """
    from logit_inversion.classifiers import load_classifier

    if not models:
        raise ValueError("Give at least one model. Received: models=[]")
    if diversity_samples < 2 or diversity_images < 1:
        raise ValueError("diversity_samples must be ≥ 2 and diversity_images ≥ 1. Received: "
                         f"diversity_samples={diversity_samples}, "
                         f"diversity_images={diversity_images}")
    for spec in models:   # a malformed baseline spec fails before anything is loaded
        if spec.split(":", 1)[0] == optimization.PREFIX:
            optimization.parse_spec(spec)
    progress = lambda step, error: _log(f"  step {step}: logit error {error:.4f}")  # noqa: E731
    loaded = {}
    for spec in models:   # loading every model first makes a bad spec fail before the work
        if spec.split(":", 1)[0] != optimization.PREFIX:
            loaded[spec] = load_model(spec)
    if classifier is not None:
        for spec, model in loaded.items():
            if model.classifier and not same_classifier(model.classifier, classifier):
                raise ValueError(
                    f"{spec} inverts classifier {model.classifier!r}, not --classifier; each "
                    f"model is scored with its own classifier (leave --classifier out). "
                    f"Received: classifier={classifier}")
    else:
        classifier = next((m.classifier for m in loaded.values() if m.classifier), None)
    if classifier is None:
        raise ValueError("No workdir or shipped model (metadata.json) among the models names "
                         "the classifier; pass "
                         f"--classifier. Received: models={models}")
    phis = {_canonical(classifier): (classifier, load_classifier(classifier))}
    for model in loaded.values():
        if model.classifier and _canonical(model.classifier) not in phis:
            phis[_canonical(model.classifier)] = (model.classifier,
                                                  load_classifier(model.classifier))
    phi = phis[_canonical(classifier)][1]
    resolution = next((m.resolution for m in loaded.values()), phi.spec.input_size)
    for spec in models:
        if spec not in loaded:
            loaded[spec] = load_model(spec, phi, resolution, progress)
    # The optimization baseline inverts the default Φ it was built with.
    handles = {spec: (m.classifier if m.classifier and m.kind != "optimization" else classifier)
               for spec, m in loaded.items()}
    features_name, features = feature_space(feature_classifier or classifier, feature_layer)

    _log(f"reading {num_images} images of {dataset}:{split}")
    images, labels = load_images(dataset, split, num_images, resolution, data_dir)
    logits_of = {key: _in_batches(network, images) for key, (_, network) in phis.items()}
    labelled = bool(tf.reduce_all(labels >= 0))
    groups = labels if labelled else tf.argmax(logits_of[_canonical(classifier)], -1)
    candidates = identification.sample_candidates(groups.numpy(), num_distractors, seed)
    real_features = _in_batches(features, images)
    results = {}
    for i, (spec, model) in enumerate(loaded.items(), 1):
        key = _canonical(handles[spec])
        own_phi, logits = phis[key][1], logits_of[key]
        _log(f"[{i}/{len(loaded)}] {spec}: reconstructing {num_images} images from the logits "
             f"of {handles[spec]}")
        start = time.perf_counter()
        reconstructions = model.reconstruct(images, logits, seed)
        seconds = time.perf_counter() - start
        metrics = score(images, labels, logits, reconstructions, own_phi, features, candidates,
                        real_features)
        metrics["images_per_second"] = num_images / seconds
        metrics["seconds"] = seconds
        if model.deterministic:
            metrics["diversity"] = 0.0
        else:
            m = min(diversity_images, num_images)
            _log(f"[{i}/{len(loaded)}] {spec}: diversity, {diversity_samples} samples × {m}")
            samples = [model.reconstruct(images[:m], logits[:m], seed + 1 + s)
                       for s in range(diversity_samples)]
            metrics["diversity"] = float(diversity.mean_pairwise_distance(tf.stack(samples)))
        metrics["kind"] = model.kind
        metrics["classifier"] = handles[spec]
        metrics["classifier_recorded"] = bool(model.classifier)
        metrics["images"] = num_images
        results[spec] = metrics
        _log(f"[{i}/{len(loaded)}] {spec}: done in {seconds:.1f} s; top-1 agreement "
             f"{metrics['top1_agreement']:.3f}, identification (L2) "
             f"{metrics.get('ident_l2', float('nan')):.3f}")
    skipped = {}
    if resolution < image_quality.ms_ssim_min_size():
        skipped["ms_ssim"] = (f"needs ≥ {image_quality.ms_ssim_min_size()} px with TF's 5 default "
                              f"scales and 11-px window; images are {resolution} px")
    return {
        "dataset": dataset, "split": split, "num_images": num_images,
        "resolution": resolution, "classifier": classifier,
        "classifiers": sorted({handles[spec] for spec in loaded}),
        "feature_space": features_name, "num_distractors": num_distractors,
        "chance": 1.0 / (num_distractors + 1), "diversity_images": diversity_images,
        "diversity_samples": diversity_samples, "seed": seed, "skipped": skipped,
        "models": results,
    }


def markdown_table(results):
    """The results as a Markdown table, one row per model with the classifier Φ whose logits
    it inverted and that scored it, and a line of context under it."""
    header = "| model | Φ | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (len(COLUMNS) + 2)]
    for spec, metrics in results["models"].items():
        cells = []
        for key, _, fmt in COLUMNS:
            value = metrics.get(key)
            cells.append("–" if value is None else "∞" if value == math.inf
                         else fmt.format(value))
        phi = metrics.get("classifier", results["classifier"])
        if metrics.get("classifier_recorded") is False:
            phi += " (not recorded by the model; --classifier)"
        lines.append(f"| `{spec}` | `{phi}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"{results['num_images']} images of {results['dataset']}:{results['split']} at "
        f"{results['resolution']} px; each row inverts the logits of its own classifier Φ and "
        f"is scored by it; identification "
        f"among N = {results['num_distractors']} same-class distractors (chance "
        f"{results['chance']:.3f}); FD and KID in one feature space shared by every row, the "
        f"{results['feature_space']}, "
        f"reconstructions vs the same originals; diversity = mean pairwise RMS pixel "
        f"distance of {results['diversity_samples']} noise draws at fixed logits "
        f"({results['diversity_images']} images).")
    for key, reason in results["skipped"].items():
        lines.append(f"{key} not computed: {reason}.")
    return "\n".join(lines) + "\n"


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else None
    return value


def write_results(results, output_dir):
    """Writes `metrics.json` and `metrics.md` into `output_dir` atomically; returns their paths.

    Non-finite numbers (PSNR of an exact copy) are written as the strings "inf" / "-inf"."""
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for name, text in (("metrics.json", json.dumps(_finite(results), indent=2, sort_keys=True)),
                       ("metrics.md", markdown_table(results))):
        path = os.path.join(output_dir, name)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        paths.append(path)
    return paths
