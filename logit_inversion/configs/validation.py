"""`validate(config)`: every key's type and range, and every rule between keys, checked before a
run writes anything.

A bad value fails in one line that names the key, the value and what was expected, e.g.

    config.checkpoint_every must be an integer >= 1. Received: checkpoint_every=0

rather than as a traceback from deep inside Keras after the workdir, `config.json` and
`tensorboard/` exist. `training.train` calls it first, through `training.validate_config`.

Every rule is here, and this module imports nothing of the package above `configs`, so that
the configs stay the bottom of the pipeline: what a rule needs from a later stage is passed
in. `architecture` is the BigGAN table (`models.arch`), for the rules on the resolution, the
block multipliers, the noise chunks and the attention sizes; `resolve_classifier` is
`classifiers.frozen.resolve_spec`, so a bad classifier handle or spec fails here too.

Extending it: a new key of `configs/base.py` gets one row in `KEYS` (`integer`, `number`,
`boolean`, `text`, ...; `tests/test_validation.py` fails on a key of a shipped config without
one); a rule between keys is a function `(config, num_replicas) -> message or None` in
`CROSS_RULES` (`ARCHITECTURE_RULES` when it reads the table). Keys a caller adds beyond
`configs/base.py` are still checked by type: numbers must be finite, and counts (names such as
`num_*`, `*_steps`, `*_every`, `*_batches`, `*_examples`, `*_images`) non-negative integers.
"""

import dataclasses
import math
import re
from typing import Any, Callable

# numpy's global seed, which keras.utils.set_random_seed sets, must fit in 32 bits.
_MAX_SEED = 2**32 - 1
_COUNT_NAME = re.compile(r"(^num_|_steps$|_every$|_batches$|_examples$|_images$)")


class ConfigError(ValueError):
    """A config value that cannot work; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Key:
    """How one config key is checked.

    Attributes:
        check: the value (never None) → whether it is acceptable.
        expected: what an acceptable value is, completing "config.KEY must be ...".
        optional: None is acceptable (placeholders such as `data_dir`).
    """

    check: Callable[[Any], bool]
    expected: str
    optional: bool = False


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def integer(low=None, high=None, optional=False):
    """An int (not a bool) in [low, high]."""
    bounds = (f" >= {low}" if high is None else f" in [{low}, {high}]") if low is not None else ""
    return Key(
        lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high),
        f"an integer{bounds}",
        optional,
    )


def number(low=None, high=None, low_open=False, high_open=False, optional=False):
    """A finite int or float in the interval [low, high] (open ends where asked)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")

    def check(v):
        if not _is_number(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)

    return Key(check, "a finite number" + (" " + " and ".join(parts) if parts else ""), optional)


def boolean(optional=False):
    return Key(lambda v: isinstance(v, bool), "True or False", optional)


def text(optional=False):
    return Key(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string", optional)


def choice(*values):
    return Key(lambda v: v in values, "one of " + ", ".join(repr(v) for v in values))


def multipliers():
    return Key(
        lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(_is_int(m) and m >= 1 for m in v),
        "None or a tuple of integers >= 1, one per block",
        optional=True,
    )


def value_range():
    return Key(
        lambda v: isinstance(v, (tuple, list)) and len(v) == 2 and all(map(_is_number, v))
        and v[0] < v[1],
        "None or two numbers low,high with low < high (e.g. 0,255)",
        optional=True,
    )


# Every key of configs/base.py; a config without one of them is refused (a workdir's older
# config.json gets the missing keys from base when `training.checkpoints.load_config` reads it).
KEYS = {
    "dataset": text(),
    "data_dir": text(optional=True),
    "train_split": text(),
    "eval_split": text(),
    "eval_examples": integer(1),
    "classifier": text(),
    "classifier_spec.input_size": integer(1, optional=True),
    "classifier_spec.value_range": value_range(),
    "classifier_spec.num_classes": integer(1, optional=True),
    "classifier_spec.has_background": boolean(optional=True),
    "classifier_spec.signature": text(optional=True),
    "classifier_spec.output_key": text(optional=True),
    "classifier_spec.class_names_file": text(optional=True),
    "conditioning.layer": text(optional=True),
    "conditioning.size": integer(1, optional=True),
    "preflight.enabled": boolean(),
    "preflight.accept_risk": boolean(),
    "preflight.num_examples": integer(1),
    "resolution": integer(1),
    "model.ch": integer(1),
    "model.g_multipliers": multipliers(),
    "model.d_multipliers": multipliers(),
    "model.noise_dim": integer(1),
    "model.embed_dim": integer(1),
    "model.logit_scale": number(0, low_open=True),
    "model.g_attention": integer(0),
    "model.d_attention": integer(0),
    "model.deep": boolean(),
    "batch_size": integer(1),
    "num_steps": integer(1),
    "d_steps": integer(1),
    "g_lr": number(0, low_open=True),
    "d_lr": number(0, low_open=True),
    "lr_decay_from": number(0, 1, low_open=True),
    "beta1": number(0, 1, high_open=True),
    "beta2": number(0, 1, high_open=True),
    "ema_decay": number(0, 1),
    "ema_start": integer(0),
    "standing_stats_batches": integer(0),
    "consistency_weight": number(0),
    "consistency_temperature": number(0, low_open=True),
    "pixel_weight": number(0),
    "diversity_weight": number(0),
    "consistency_start": integer(0),
    "r1_weight": number(0),
    "diversity_clip": number(0, low_open=True),
    "deterministic": boolean(),
    "feature_weight": number(0),
    "feature_layer": text(),
    "train_agreement_every": integer(1),
    "mixed_precision": boolean(),
    "jit_compile": boolean(),
    "cpu_bfloat16": choice("auto", "on", "off"),
    "steps_per_execution": integer(1),
    "checkpoint_every": integer(1),
    "keep_checkpoints": integer(1),
    "num_images": integer(1),
    "seed": integer(0, _MAX_SEED),
}


_MISSING = object()


def _get(config, key):
    node = config
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node:
            return _MISSING
        node = node[part]
    return node


def _flatten(config, prefix=""):
    for name in config.keys():
        value = config[name]
        if hasattr(value, "keys"):
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


# ---- rules between keys ---------------------------------------------------------------


def _generator_blocks(config, arch):
    return len(arch.generator_channels(config.resolution, config.model.ch,
                                       config.model.g_multipliers))


def _resolution(config, num_replicas, arch):
    if config.resolution not in arch.GENERATOR:
        return (f"config.resolution must be one of {sorted(arch.GENERATOR)} (the BigGAN "
                f"architecture table). Received: resolution={config.resolution}")


def _block_multipliers(config, num_replicas, arch):
    for key, table, network in (("g_multipliers", arch.GENERATOR, "generator"),
                                ("d_multipliers", arch.DISCRIMINATOR, "discriminator")):
        value = config.model[key]
        blocks = len(table[config.resolution][0])
        if value is not None and len(value) != blocks:
            return (f"config.model.{key} must have one multiplier per {network} block ({blocks} at "
                    f"{config.resolution} px). Received: model.{key}={tuple(value)}")


def _noise_chunks(config, num_replicas, arch):
    # The BigGAN generator (not -deep) splits the noise into one equal chunk for its input
    # layer and one per block (models/generator.py).
    if config.model.deep:
        return None
    chunks = _generator_blocks(config, arch) + 1
    if config.model.noise_dim % chunks:
        return (f"config.model.noise_dim must be a multiple of {chunks}: the generator splits "
                f"the noise into {chunks} equal chunks at {config.resolution} px (one for its "
                f"input, one per block). Received: model.noise_dim={config.model.noise_dim}")


def _attention(config, num_replicas, arch):
    g_sizes = [4 * 2 ** (i + 1) for i in range(_generator_blocks(config, arch))]
    d_sizes, size = [], config.resolution
    for _, down in arch.discriminator_channels(config.resolution, 1, config.model.d_multipliers):
        size = size // 2 if down else size
        d_sizes.append(size)
    for key, sizes in (("g_attention", g_sizes), ("d_attention", d_sizes)):
        value = config.model[key]
        if value and value not in sizes:
            return (f"config.model.{key} must be 0 (none) or a feature-map size of the "
                    f"{config.resolution} px network, one of {sorted(set(sizes))}. "
                    f"Received: model.{key}={value}")


def _checkpoint_multiples(config, num_replicas):
    if config.num_steps % config.checkpoint_every:
        return (f"config.num_steps must be a multiple of checkpoint_every={config.checkpoint_every} "
                f"(training runs in whole checkpoint periods). Received: "
                f"num_steps={config.num_steps}, checkpoint_every={config.checkpoint_every}")
    if config.checkpoint_every % config.steps_per_execution:
        return (f"config.checkpoint_every must be a multiple of steps_per_execution="
                f"{config.steps_per_execution}. Received: checkpoint_every="
                f"{config.checkpoint_every}, steps_per_execution={config.steps_per_execution}")


def _batch_split(config, num_replicas):
    # One train step reads batch_size * d_steps images, splits them across the replicas, and
    # each replica cuts its share into d_steps equal slices (one per D step): that works for
    # every d_steps exactly when batch_size is a multiple of the replica count.
    if config.batch_size % num_replicas:
        return (f"config.batch_size must be a multiple of the {num_replicas} replicas, so that "
                f"each replica's share of the batch splits into d_steps={config.d_steps} equal "
                f"slices. Received: batch_size={config.batch_size}, replicas={num_replicas}")


CROSS_RULES = [
    _checkpoint_multiples,
    _batch_split,
]

# Rules that read the architecture table: `(config, num_replicas, architecture) -> message or
# None`, in this order (each one after it assumes the resolution is in the table).
ARCHITECTURE_RULES = [
    _resolution,
    _block_multipliers,
    _noise_chunks,
    _attention,
]


# ---- entry point ----------------------------------------------------------------------


def validate(config, num_replicas=1, architecture=None, resolve_classifier=None):
    """Raises `ConfigError` (a ValueError), in one line, for the first bad value in `config`.

    Args:
        config: a training config (`ml_collections.ConfigDict`, as `configs/base.py` builds).
        num_replicas: replicas of the distribution strategy the run will use.
        architecture: the BigGAN architecture table, `models.arch` (its `GENERATOR` and
            `DISCRIMINATOR` tables and their `*_channels` functions); None skips
            `ARCHITECTURE_RULES`.
        resolve_classifier: `(handle, classifier_spec) -> spec` raising a one-line ValueError
            for a classifier that cannot be used (`classifiers.frozen.resolve_spec`: registry,
            metadata.json, `classifier_spec` keys, the model's signature); None skips it.
            It loads the model only when its spec must be inferred from its signature.

    Example:
        >>> config = get_config(); config.checkpoint_every = 0
        >>> validate(config)
        ConfigError: config.checkpoint_every must be an integer >= 1. Received: checkpoint_every=0
    """
    for key, rule in KEYS.items():
        value = _get(config, key)
        if value is _MISSING:
            raise ConfigError(f"config.{key} is missing: a config starts from configs/base.py's "
                              f"get_base_config(). Received: a config without {key}")
        if value is None and rule.optional:
            continue
        if value is None or not rule.check(value):
            raise ConfigError(f"config.{key} must be {rule.expected}. Received: {key}={value!r}")
    for key, value in _flatten(config):
        if key not in KEYS:
            _check_unlisted(key, value)
    for rule in CROSS_RULES:
        message = rule(config, num_replicas)
        if message:
            raise ConfigError(message)
    if architecture is not None:
        for rule in ARCHITECTURE_RULES:
            message = rule(config, num_replicas, architecture)
            if message:
                raise ConfigError(message)
    if resolve_classifier is not None:
        resolve_classifier(config.classifier, config.classifier_spec)


def _check_unlisted(key, value):
    """Type checks for keys beyond `configs/base.py` (a caller's own)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise ConfigError(f"config.{key} must be a finite number. Received: {key}={value!r}")
    if _COUNT_NAME.search(key.split(".")[-1]) and not (_is_int(value) and value >= 0):
        raise ConfigError(f"config.{key} must be an integer >= 0 (a count). "
                          f"Received: {key}={value!r}")
