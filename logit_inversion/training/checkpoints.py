"""Checkpoints and the workdir's record of the config that wrote them.

`tf.train.CheckpointManager` makes a save atomic from the reader's side: the data files of
step N are written first and the `checkpoint` index file is replaced (atomic rename) only
afterwards, so a crash mid-save leaves the index pointing at step N−1.

Under `MultiWorkerMirroredStrategy` every worker must take part in a save (saving may run
collective ops), but only the chief writes into the workdir: the others save into a private
temporary folder that is deleted right after (the `tf.distribute` multi-worker pattern), and
restore from the chief's checkpoints, so the workdir must be readable by every worker.
All paths go through `tf.io.gfile`: a workdir may be `gs://...`.
"""

import json
import shutil
import tempfile

import tensorflow as tf

from logit_inversion import files
from logit_inversion.configs.base import ARCHITECTURE_KEYS, get_base_config

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
    files.write_atomic(path, json.dumps(payload, indent=2, sort_keys=True))


def check_compatible(workdir, config):
    """Raises ValueError naming the first architecture key whose value differs from the
    config recorded in `workdir` (nothing is written or deleted)."""
    path = files.join(workdir, CONFIG_FILENAME)
    if not tf.io.gfile.exists(path):
        return
    saved = _flatten(json.loads(files.read_text(path)))
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
    write_json_atomic(files.join(workdir, CONFIG_FILENAME), config_to_dict(config))


def load_config(workdir):
    """The config recorded in `workdir`, over `configs/base.py`: a key that the workdir's
    config.json lacks (written before the key existed) takes its one default from base."""
    path = files.join(workdir, CONFIG_FILENAME)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"No {CONFIG_FILENAME} in workdir {workdir!r}: is it a "
                         "`bin/train` workdir? Received: workdir=" + repr(workdir))
    config = get_base_config()
    try:
        config.update(_tuples(json.loads(files.read_text(path))))
    except TypeError as error:
        raise ValueError(f"{path} holds a value of another type than configs/base.py's: "
                         f"{error}. Received: workdir={workdir!r}") from None
    return config


def _tuples(d):
    # JSON turns tuples into lists; the model config expects tuples back.
    return {k: (_tuples(v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v)
            for k, v in d.items()}


def variables_by_path(layer):
    """`{variable.path: variable}` for every weight of `layer`.

    `tf.train.Checkpoint` does not see Keras 3 sub-layers held in Python lists or dicts (the
    generator's and discriminator's blocks), nor weights made with `add_weight`: handed the
    layer itself it saved 5 of the generator's variables. Keying the variables by their
    Keras path saves every one, under names that do not depend on how layers are nested.
    """
    by_path = {variable.path: variable for variable in layer.weights}
    if len(by_path) != len(layer.weights):
        raise ValueError(f"Layer {layer.name!r} has variables with the same path; every "
                         "sub-layer needs a unique name to be checkpointed.")
    return by_path


def _checkpoint_key(attribute, path):
    """The key under which `make_manager`'s checkpoint stores the variable `path` of the dict
    `attribute`: object-graph names escape "." as ".." and "/" as ".S"."""
    escaped = path.replace(".", "..").replace("/", ".S")
    return f"{attribute}/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"


def missing_variables(checkpoint_path, layer, attribute="ema_generator"):
    """The paths of `layer`'s variables that the checkpoint `checkpoint_path` (written by
    `make_manager`'s checkpoint, `layer` under `attribute`) holds no value for; [] when it
    covers them all."""
    # The reader takes the prefix as it is: `tf.train.list_variables` first asks whether the
    # path is a directory, which a prefix on some filesystems (ram://) appears to be.
    saved = set(tf.compat.v1.train.NewCheckpointReader(checkpoint_path)
                .get_variable_to_shape_map())
    return [path for path in variables_by_path(layer)
            if _checkpoint_key(attribute, path) not in saved]


def check_covers_generator(checkpoint_path, inverter, workdir):
    """Raises ValueError, in one line naming them, when the checkpoint misses any variable of
    the EMA generator: those would keep their fresh initialisation, and every reconstruction,
    score and export made from the workdir would silently be of another network."""
    missing = missing_variables(checkpoint_path, inverter.ema_generator)
    if missing:
        total = len(inverter.ema_generator.weights)
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more"
                                           if len(missing) > 10 else "")
        raise ValueError(
            f"Checkpoint {checkpoint_path} holds no value for {len(missing)} of the EMA "
            f"generator's {total} variables ({shown}); refusing to use freshly initialised "
            f"layers. Use an export written by the training process, or retrain. "
            f"Received: workdir={workdir}")


def make_manager(inverter, workdir, keep, chief=True):
    """A `CheckpointManager` over everything training needs to resume: G, its EMA copy, D,
    both optimizers (their `iterations` is the step). With `chief=False` (a non-chief worker),
    a `WorkerCheckpoints` that saves where nobody reads and restores the chief's."""
    checkpoint = tf.train.Checkpoint(
        generator=variables_by_path(inverter.generator),
        ema_generator=variables_by_path(inverter.ema_generator),
        discriminator=variables_by_path(inverter.discriminator),
        g_optimizer=inverter.g_optimizer, d_optimizer=inverter.d_optimizer)
    directory = files.join(workdir, "checkpoints")
    if not chief:
        return WorkerCheckpoints(checkpoint, directory)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)


class WorkerCheckpoints:
    """A non-chief worker's side of the chief's `tf.train.CheckpointManager`.

    `save` does what the chief's manager does (same collective ops, same save counter), into
    a fresh local temporary folder that is deleted at once; `latest_checkpoint` is the chief's.
    A private folder per save is what keeps workers from deleting each other's shards.
    """

    def __init__(self, checkpoint, chief_directory):
        self.checkpoint = checkpoint
        self.directory = chief_directory

    @property
    def latest_checkpoint(self):
        return tf.train.latest_checkpoint(self.directory)

    def save(self, checkpoint_number=None):
        scratch = tempfile.mkdtemp(prefix="logit_inversion-worker-ckpt-")
        try:
            tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1).save(
                checkpoint_number=checkpoint_number)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
