"""Small, fast stand-ins for tests, examples and benchmarks (no downloads, seconds to build)."""

import json
import os

import numpy as np
import tensorflow as tf

from logit_inversion.configs.demo import get_config as demo_config


class _TinyClassifier(tf.Module):
    """A fixed random conv net in TF Hub format: `__call__(images in [0, 1])` → logits."""

    def __init__(self, num_classes, input_size, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.conv = tf.Variable(rng.normal(0, 0.5, (3, 3, 3, 8)).astype("float32"))
        self.dense = tf.Variable(rng.normal(0, 0.5, (8, num_classes)).astype("float32"))
        self.__call__ = tf.function(
            self._logits,
            input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.float32)])

    def _logits(self, images):
        h = tf.nn.relu(tf.nn.conv2d(images * 2.0 - 1.0, self.conv, 2, "SAME"))
        return tf.matmul(tf.reduce_mean(h, axis=(1, 2)), self.dense) * 4.0


def save_tiny_classifier(path, num_classes=6, input_size=32, seed=0):
    """Writes a tiny TF Hub-format classifier SavedModel with `metadata.json` to `path`."""
    module = _TinyClassifier(num_classes, input_size, seed)
    tf.saved_model.save(module, path, signatures={"serving_default": module.__call__})
    with open(os.path.join(path, "metadata.json"), "w") as f:
        json.dump({"input_size": input_size, "value_range": [0.0, 1.0],
                   "num_classes": num_classes,
                   "class_names": [f"class{i}" for i in range(num_classes)]}, f)
    return path


def tiny_config(classifier, data_dir, **overrides):
    """The demo config shrunk to seconds per run: width 4, batch 8, a handful of steps."""
    c = demo_config()
    c.classifier = classifier
    c.data_dir = data_dir
    c.model.ch = 4
    c.model.noise_dim = 16
    c.model.embed_dim = 8
    c.batch_size = 8
    c.num_steps = 4
    c.checkpoint_every = 2
    c.steps_per_execution = 1   # a test that wants more sets it
    c.eval_examples = 16
    c.num_images = 4
    c.ema_start = 0
    # The same float32 numbers on every machine; tests of the bfloat16 rewrite turn it on.
    c.cpu_bfloat16 = "off"
    # The tiny classifier is a fixed random net: it cannot pass the pre-flight accuracy check.
    c.preflight.enabled = False
    for key, value in overrides.items():
        target, *path = key.split(".")[::-1]
        node = c
        for part in reversed(path):
            node = node[part]
        node[target] = value
    return c


def save_workdir_and_export(config, workdir, export_dir):
    """Builds the (untrained) inverter `config` describes, writes it as a `bin/train` workdir
    (config record + one checkpoint) and as an export; returns the export's version folder."""
    from logit_inversion import training
    from logit_inversion.serving import export
    from logit_inversion.training import checkpoints

    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    checkpoints.record_config(str(workdir), config)
    checkpoints.make_manager(inverter, str(workdir), keep=1).save()
    return export.export_inverter(inverter, str(export_dir))


def record_stream_seeds(monkeypatch):
    """The seed of every training stream `training.train` builds from now on, in order: a
    list that fills as runs go. `monkeypatch` is pytest's (its undo removes the spy)."""
    from logit_inversion.training import trainer
    seeds, build = [], trainer.build_dataset

    def spy(*args, **kwargs):
        if kwargs.get("training"):
            seeds.append(kwargs["seed"])
        return build(*args, **kwargs)

    monkeypatch.setattr(trainer, "build_dataset", spy)
    return seeds
