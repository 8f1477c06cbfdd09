"""Feedforward reconstruction vs the optimization baseline: images/s and instance
identification on the same images (`bin/benchmark invert`).

Both start from the same images: the feedforward path is Φ then G (one forward pass each);
the optimization path is Φ then `steps` Adam steps through Φ per image batch. Its
identification is recorded at several step counts, so the output says how many steps the
baseline needs to identify as well as the inverter, and what the speed ratio is there.
"""

import time

import numpy as np
import tensorflow as tf

DEFAULTS = {
    "workdir": None,           # a bin/train workdir; None → an untrained demo inverter
    "dataset": "shapes", "split": "test", "data_dir": None,
    "num_images": 120,
    "num_distractors": 9,
    "steps": (10, 30, 100, 300),   # optimization step counts at which identification is read
    "reference_steps": 1000,   # the step count of the headline ratio (M&V-scale budgets)
    "optimize": "optimize",    # spec of the baseline's other settings (lr, tv, ...)
    "repeats": 5,
    "seed": 0,
}


def _inverter(workdir):
    from logit_inversion import training
    from logit_inversion.configs import demo

    if workdir:
        from logit_inversion.evaluation.models import check_checkpoint_covers_generator

        inverter = training.restore_inverter(workdir)
        check_checkpoint_covers_generator(inverter, workdir)
        return inverter, workdir
    return training.build_inverter(demo.get_config()), "untrained demo inverter"


def _feedforward_seconds(inverter, images, repeats, seed):
    @tf.function
    def reconstruct(x):
        noise = inverter.sample_noise(tf.shape(x)[0], seed=(seed, 7))
        return inverter.generate(inverter.classifier(x), noise)

    out = reconstruct(images)           # traces
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = reconstruct(images)
        out.numpy()
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def run(args=None):
    from logit_inversion.evaluation import evaluate, identification
    from logit_inversion.evaluation.baselines import optimization

    options = dict(DEFAULTS)
    overrides = args if isinstance(args, dict) else vars(args) if args is not None else {}
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown invert benchmark options {sorted(unknown)}; known: "
                         f"{sorted(DEFAULTS)}. Received: args={args}")
    options.update({k: v for k, v in overrides.items() if v is not None})
    steps = sorted(int(s) for s in options["steps"])
    if not steps or steps[0] < 2:
        raise ValueError(f"steps must be step counts ≥ 2. Received: steps={options['steps']}")
    settings = optimization.parse_spec(options["optimize"])
    settings["steps"] = steps[-1]

    inverter, source = _inverter(options["workdir"])
    images, labels = evaluate.load_images(options["dataset"], options["split"],
                                          options["num_images"], inverter.resolution,
                                          options["data_dir"])
    n = int(images.shape[0])
    candidates = identification.sample_candidates(labels.numpy(), options["num_distractors"],
                                                  options["seed"])

    def identify(reconstructions):
        result = identification.identification(images, reconstructions, None,
                                               candidates=candidates)
        return {k: round(float(v), 4) for k, v in result.items() if k != "chance"}

    recon, ff_seconds = _feedforward_seconds(inverter, images, options["repeats"],
                                             options["seed"])
    feedforward = {"images_per_second": round(n / ff_seconds, 1),
                   "seconds_per_batch": round(ff_seconds, 5),
                   "identification": identify(recon)}

    # Φ(x) is part of both paths; time it once so the baseline's cost is Φ + steps × step.
    classify = tf.function(inverter.classifier)
    logits = classify(images)
    start = time.perf_counter()
    logits = classify(images)
    logits.numpy()
    classify_seconds = time.perf_counter() - start

    baseline = optimization.OptimizationInverter(inverter.classifier, inverter.resolution,
                                                 **settings)
    _, recorded = baseline.invert(logits, seed=options["seed"], record_steps=steps)
    step_seconds = baseline.seconds_per_step

    def opt_rate(count):
        return n / (classify_seconds + count * step_seconds)

    by_steps = []
    for count in steps:
        rate = opt_rate(count)
        by_steps.append({"steps": count, "images_per_second": round(rate, 4),
                         "speed_ratio": round(feedforward["images_per_second"] / rate, 1),
                         "identification": identify(recorded[count])})
    ours = feedforward["identification"]["l2"]
    match = next((row for row in by_steps if row["identification"]["l2"] >= ours), None)
    reference_ratio = feedforward["images_per_second"] / opt_rate(options["reference_steps"])
    return {
        "config": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
                   "model": source, "optimization_settings": settings,
                   "chance": 1.0 / (options["num_distractors"] + 1)},
        "feedforward": feedforward,
        "optimization": {"seconds_per_step": round(step_seconds, 5),
                         "classify_seconds": round(classify_seconds, 5),
                         "by_steps": by_steps},
        "speed_ratio_at_reference_steps": round(reference_ratio, 1),
        "target_ratio": 1000,
        "meets_target": reference_ratio >= 1000,
        # Smallest recorded step count whose L2 identification reaches the inverter's.
        "steps_to_match_identification": match and match["steps"],
        "speed_ratio_at_match": match and match["speed_ratio"],
    }


def table(result):
    """The result as a text table: one row for the inverter, one per optimization step count."""
    chance = result["config"]["chance"]
    rows = [("method", "images/s", "× slower than ours", "ident. L2", "ident. SSIM"),
            ("feedforward (Φ + G)", f"{result['feedforward']['images_per_second']:.1f}", "1",
             f"{result['feedforward']['identification']['l2']:.3f}",
             f"{result['feedforward']['identification']['ssim']:.3f}")]
    for row in result["optimization"]["by_steps"]:
        rows.append((f"optimization, {row['steps']} steps", f"{row['images_per_second']:.3g}",
                     f"{row['speed_ratio']:.0f}", f"{row['identification']['l2']:.3f}",
                     f"{row['identification']['ssim']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows]
    match = result["steps_to_match_identification"]
    lines.append(
        f"chance {chance:.3f}; speed ratio at {result['config']['reference_steps']} steps "
        f"{result['speed_ratio_at_reference_steps']:.0f}× (target ≥ {result['target_ratio']}×); "
        + (f"optimization matches our L2 identification at {match} steps "
           f"({result['speed_ratio_at_match']:.0f}× slower)" if match else
           "optimization does not reach our L2 identification within "
           f"{result['optimization']['by_steps'][-1]['steps']} steps"))
    return "\n".join(lines)
