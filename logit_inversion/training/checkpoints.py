"""Checkpoints and the workdir's record of the config that wrote them.

`tf.train.CheckpointManager` makes a save atomic from the reader's side: the data files of
step N are written first and the `checkpoint` index file is replaced (atomic rename) only
afterwards, so a crash mid-save leaves the index pointing at step N−1.
"""

import json
import os

import ml_collections
import tensorflow as tf

from logit_inversion.configs.base import ARCHITECTURE_KEYS

CONFIG_FILENAME = "config.json"


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def config_to_dict(config):
    return json.loads(config.to_json()) if hasattr(config, "to_json") else dict(config)


def write_json_atomic(path, payload):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check_compatible(workdir, config):
    """Raises ValueError naming the first architecture key whose value differs from the
    config recorded in `workdir` (nothing is written or deleted)."""
    path = os.path.join(workdir, CONFIG_FILENAME)
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = _flatten(json.load(f))
    current = _flatten(config_to_dict(config))
    for key in sorted(set(saved) | set(current)):
        if not key.split(".")[0] in ARCHITECTURE_KEYS:
            continue
        if saved.get(key) != current.get(key):
            raise ValueError(
                f"Workdir {workdir} holds a checkpoint written with {key}={saved.get(key)!r}, "
                f"but the config has {key}={current.get(key)!r}; use another --workdir or the "
                "same value.")


def record_config(workdir, config):
    write_json_atomic(os.path.join(workdir, CONFIG_FILENAME), config_to_dict(config))


def load_config(workdir):
    path = os.path.join(workdir, CONFIG_FILENAME)
    if not os.path.exists(path):
        raise ValueError(f"No {CONFIG_FILENAME} in workdir {workdir!r}: is it a "
                         "`bin/train` workdir? Received: workdir=" + repr(workdir))
    with open(path) as f:
        return ml_collections.ConfigDict(_tuples(json.load(f)))


def _tuples(d):
    # JSON turns tuples into lists; the model config expects tuples back.
    return {k: (_tuples(v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v)
            for k, v in d.items()}


def make_manager(inverter, workdir, keep):
    """A `CheckpointManager` over everything training needs to resume: G, its EMA copy, D,
    both optimizers (their `iterations` is the step)."""
    checkpoint = tf.train.Checkpoint(
        generator=inverter.generator, ema_generator=inverter.ema_generator,
        discriminator=inverter.discriminator, g_optimizer=inverter.g_optimizer,
        d_optimizer=inverter.d_optimizer)
    return tf.train.CheckpointManager(checkpoint, os.path.join(workdir, "checkpoints"),
                                      max_to_keep=keep)
