"""Trains one inverter with a cheap quality probe; run as a script by `benchmarks.quality`.

It imports `logit_inversion` from `--code_root`, so that the same driver trains today's code
and an older commit checked out with `git worktree`. It uses only what both expose:
`training.build_inverter`, `training.compile_inverter`, `data.pipeline.build_dataset`, the
inverter's `classifier`, `generate` and `sample_noise`. The identification metric is loaded
from `--identification` (a file path), so the old code is scored by today's metric.

Every `--probe_every` generator steps the probe reconstructs the same held-out images with
the same noise (G_ema, inference mode, no standing statistics: the cheap check a stopping
rule can afford) and appends one JSON line to `--output`:
{"step", "wall_seconds", "probe_seconds", "agreement", "identification_l2",
 "cpu_seconds", "class_agreement", "worst_class_agreement", "class_epsilon_diversity",
 "min_epsilon_diversity"}: agreement per class of Φ(x) and its minimum; and, with
`--noise_use` (the ε-diversity module's path, loaded like the identification metric), each
class's ε-diversity from `--noise_images` images per class × 4 resampled ε, and its minimum. `wall_seconds` counts from the first training step and includes every
probe, and the 16 first images with their reconstructions to `<output stem>_grid.npz` (the
latest) and `<output stem>_grid_<step>.npz` (each probe's). With `--targets` it stops at the
first probe that meets all of them.
"""

import argparse
import importlib.util
import json
import os
import resource
import sys
import time


def _load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--code_root", required=True)
    parser.add_argument("--identification", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--overrides", default="{}")
    parser.add_argument("--num_steps", type=int, default=None)
    parser.add_argument("--probe_every", type=int, default=100)
    parser.add_argument("--num_images", type=int, default=500)
    parser.add_argument("--targets", default="{}")
    parser.add_argument("--noise_use", default=None)
    parser.add_argument("--noise_images", type=int, default=12)
    args = parser.parse_args(argv)

    sys.path.insert(0, os.path.abspath(args.code_root))
    import keras
    import numpy as np
    import tensorflow as tf
    import logit_inversion
    from logit_inversion import training
    from logit_inversion.configs import demo
    from logit_inversion.data.pipeline import build_dataset
    identification = _load_module(args.identification, "quality_identification")
    noise_use = _load_module(args.noise_use, "quality_noise_use") if args.noise_use else None

    config = demo.get_config()
    for key, value in json.loads(args.overrides).items():
        node = config
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    if args.num_steps:
        config.num_steps = args.num_steps
    targets = json.loads(args.targets)
    print(f"quality driver: logit_inversion from {os.path.dirname(logit_inversion.__file__)}; "
          f"{config.num_steps} steps, probe every {args.probe_every}", flush=True)

    keras.utils.set_random_seed(config.seed)
    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    train = build_dataset(config.dataset, config.train_split, resolution=config.resolution,
                          batch_size=config.batch_size * config.d_steps,
                          data_dir=config.data_dir, training=True, seed=config.seed)
    held_out = next(iter(build_dataset(config.dataset, config.eval_split,
                                       resolution=config.resolution,
                                       batch_size=args.num_images, data_dir=config.data_dir,
                                       training=False)))
    images, labels = held_out["image"], held_out["label"].numpy()
    logits_fn = getattr(inverter.classifier, "logits", inverter.classifier)
    noise = inverter.sample_noise(args.num_images, seed=(1, 2))

    def _class_diversity(classes, num_classes):
        """Each class's ε-diversity: 4 ε for up to `noise_images` held-out images each."""
        picked = np.concatenate([np.flatnonzero(classes == c)[:args.noise_images]
                                 for c in range(num_classes)])
        samples = np.stack([
            inverter.generate(inverter.classifier(tf.gather(images, picked)),
                              inverter.sample_noise(len(picked), seed=(3, k))).numpy()
            for k in range(4)], axis=1)
        rows = noise_use.epsilon_diversity(samples, classes[picked], images.numpy(), classes,
                                           num_classes)
        return [row["epsilon_diversity"] for row in rows]

    class Probe(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.start = None
            self.cpu_start = None
            self.target_classes = None
            self.conditioning = None

        def on_train_batch_begin(self, batch, logs=None):
            if self.start is None:
                self.start, self.cpu_start = time.perf_counter(), _cpu_seconds()

        def on_epoch_end(self, epoch, logs=None):
            began = time.perf_counter()
            if self.conditioning is None:   # Φ is frozen: the originals' side, once
                self.target_classes = np.argmax(logits_fn(images), -1)
                self.conditioning = inverter.classifier(images)
            conditioning = self.conditioning
            recon = np.concatenate([
                inverter.generate(conditioning[i:i + 250], noise[i:i + 250]).numpy()
                for i in range(0, args.num_images, 250)])
            recon_classes = np.argmax(np.concatenate([
                logits_fn(recon[i:i + 250]) for i in range(0, args.num_images, 250)]), -1)
            agreement = float(np.mean(recon_classes == self.target_classes))
            num_classes = int(logits_fn(images[:1]).shape[-1])
            per_class = [float(np.mean((recon_classes == self.target_classes)[
                self.target_classes == c])) if np.any(self.target_classes == c) else None
                for c in range(num_classes)]
            diversity = (_class_diversity(self.target_classes, num_classes)
                         if noise_use else None)
            ident = identification.identification(images.numpy(), recon, labels,
                                                  num_distractors=9, metrics=("l2",))
            now = time.perf_counter()
            record = {"step": int(inverter.g_optimizer.iterations.numpy()),
                      "wall_seconds": round(now - self.start, 2),
                      "probe_seconds": round(now - began, 2),
                      "agreement": agreement,
                      "identification_l2": float(ident["l2"]),
                      "cpu_seconds": round(_cpu_seconds() - self.cpu_start, 2),
                      "class_agreement": per_class,
                      "worst_class_agreement": min(a for a in per_class if a is not None)}
            if diversity is not None:
                record["class_epsilon_diversity"] = diversity
                record["min_epsilon_diversity"] = min(
                    (d for d in diversity if d is not None), default=None)
            met = bool(targets) and all(record.get(k) is not None and record[k] >= v
                                        for k, v in targets.items())
            record["targets_met"] = met
            with open(args.output, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"quality driver: {json.dumps(record)}", flush=True)
            grid = {"originals": images.numpy()[:16], "reconstructions": recon[:16],
                    "labels": labels[:16], "step": record["step"]}
            stem = os.path.splitext(args.output)[0]
            np.savez_compressed(stem + "_grid.npz", **grid)
            # Every probe's grid is kept too, so the pictures can be compared at equal
            # steps or equal time, not only at the stopping point.
            np.savez_compressed(f"{stem}_grid_{record['step']:06d}.npz", **grid)
            if met:
                self.model.stop_training = True

    epochs = config.num_steps // args.probe_every
    inverter.fit(train, steps_per_epoch=args.probe_every, epochs=epochs, verbose=0,
                 callbacks=[Probe()])


if __name__ == "__main__":
    main()
