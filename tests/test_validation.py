"""`configs.validation.validate`: every bad value fails in one line before a workdir exists."""

import importlib
import os
import pkgutil
import subprocess
import sys

import keras
import pytest

from logit_inversion import configs, training
from logit_inversion.configs import base, validation
from logit_inversion.models import arch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAN = float("nan")

# (overrides of the tiny config, the start of the message the user sees).
BAD = [
    ({"num_steps": 0}, "config.num_steps must be an integer >= 1. Received: num_steps=0"),
    ({"num_steps": -10}, "config.num_steps must be an integer >= 1. Received: num_steps=-10"),
    ({"checkpoint_every": 0},
     "config.checkpoint_every must be an integer >= 1. Received: checkpoint_every=0"),
    ({"model.ch": -3}, "config.model.ch must be an integer >= 1. Received: model.ch=-3"),
    ({"eval_examples": 0},
     "config.eval_examples must be an integer >= 1. Received: eval_examples=0"),
    ({"batch_size": 0}, "config.batch_size must be an integer >= 1. Received: batch_size=0"),
    ({"batch_size": None}, "config.batch_size must be an integer >= 1. Received: batch_size=None"),
    ({"num_steps": True}, "config.num_steps must be an integer >= 1. Received: num_steps=True"),
    ({"d_steps": 0}, "config.d_steps must be an integer >= 1"),
    ({"steps_per_execution": 0}, "config.steps_per_execution must be an integer >= 1"),
    ({"keep_checkpoints": 0}, "config.keep_checkpoints must be an integer >= 1"),
    ({"num_images": 0}, "config.num_images must be an integer >= 1"),
    ({"seed": -1}, "config.seed must be an integer in [0, 4294967295]"),
    ({"ema_start": -1}, "config.ema_start must be an integer >= 0"),
    ({"model.noise_dim": 0}, "config.model.noise_dim must be an integer >= 1"),
    ({"model.embed_dim": 0}, "config.model.embed_dim must be an integer >= 1"),
    ({"model.g_attention": -8}, "config.model.g_attention must be an integer >= 0"),
    ({"g_lr": 0.0}, "config.g_lr must be a finite number > 0. Received: g_lr=0.0"),
    ({"d_lr": NAN}, "config.d_lr must be a finite number > 0. Received: d_lr=nan"),
    ({"beta1": 1.0}, "config.beta1 must be a finite number >= 0 and < 1"),
    ({"beta2": -0.1}, "config.beta2 must be a finite number >= 0 and < 1"),
    ({"ema_decay": 1.5}, "config.ema_decay must be a finite number >= 0 and <= 1"),
    ({"consistency_weight": -1.0}, "config.consistency_weight must be a finite number >= 0"),
    ({"consistency_temperature": 0.0}, "config.consistency_temperature must be a finite number > 0"),
    ({"pixel_weight": float("inf")}, "config.pixel_weight must be a finite number >= 0"),
    ({"dataset": ""}, "config.dataset must be a non-empty string"),
    ({"classifier_spec.input_size": 0}, "config.classifier_spec.input_size must be an integer >= 1"),
    ({"classifier_spec.num_classes": -1}, "config.classifier_spec.num_classes must be an integer"),
    ({"classifier_spec.value_range": (1.0, 0.0)},
     "config.classifier_spec.value_range must be None or two numbers low,high with low < high"),
    ({"classifier_spec.value_range": ("(0, 255)",)},
     "config.classifier_spec.value_range must be None or two numbers"),
    # Rules between keys.
    ({"num_steps": 5}, "config.num_steps must be a multiple of checkpoint_every=2"),
    ({"steps_per_execution": 3},
     "config.checkpoint_every must be a multiple of steps_per_execution=3"),
    ({"resolution": 48}, "config.resolution must be one of [32, 64, 128, 256]"),
    ({"model.g_multipliers": (2, 1)},
     "config.model.g_multipliers must have one multiplier per generator block (3 at 32 px)"),
    ({"model.d_multipliers": (1, 1, 1)},
     "config.model.d_multipliers must have one multiplier per discriminator block (4 at 32 px)"),
    ({"model.noise_dim": 15},
     "config.model.noise_dim must be a multiple of 4: the generator splits the noise into 4"),
    ({"model.g_attention": 12},
     "config.model.g_attention must be 0 (none) or a feature-map size of the 32 px network, "
     "one of [8, 16, 32]"),
    ({"model.d_attention": 4}, "config.model.d_attention must be 0 (none) or a feature-map size"),
    # Keys added by other features are checked by type: finite numbers, counts >= 0.
    ({"standing_stats_batches": -2}, "config.standing_stats_batches must be an integer >= 0"),
    ({"preflight.num_examples": 0}, "config.preflight.num_examples must be an integer >= 1"),
    ({"preflight.enabled": "no"}, "config.preflight.enabled must be True or False"),
    ({"conditioning.size": 0}, "config.conditioning.size must be an integer >= 1"),
    ({"conditioning.layer": ""}, "config.conditioning.layer must be a non-empty string"),
    ({"feature_weight": -1.0}, "config.feature_weight must be a finite number >= 0"),
    ({"deterministic": 1}, "config.deterministic must be True or False"),
    ({"extra.sharpness_weight": NAN}, "config.extra.sharpness_weight must be a finite number"),
    # A bad classifier or architecture fails before the workdir exists.
    ({"classifier": "no_such_classifier"}, "Cannot load classifier: expected a registry name"),
]


def _set(config, key, value):
    *parents, name = key.split(".")
    node = config
    for part in parents:
        if part not in node:
            node[part] = type(config)()
        node = node[part]
    if name in node and value is not None and not isinstance(value, type(node[name])):
        # ConfigDict refuses some type changes (e.g. float into an int field) at assignment;
        # a config file or an older config.json can still hold them, so bypass that check.
        node.__dict__["_fields"][name] = value
    else:
        node[name] = value


@pytest.mark.parametrize("overrides, message", BAD, ids=[m.split(" must")[0] for _, m in BAD])
def test_every_rule_fails_in_one_line_before_anything_is_written(
        tiny_config, tmp_path, overrides, message):
    for key, value in overrides.items():
        _set(tiny_config, key, value)
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        training.train(tiny_config, str(workdir), verbose=0)
    text = str(error.value)
    assert text.startswith(message) and "\n" not in text, text
    assert "Received:" in text
    assert os.listdir(tmp_path) == [], "the failed run wrote files"


def test_batch_must_split_across_replicas_and_d_step_slices(tiny_config):
    tiny_config.batch_size = 6
    tiny_config.d_steps = 2
    with pytest.raises(validation.ConfigError) as error:
        validation.validate(tiny_config, num_replicas=4)
    assert str(error.value) == (
        "config.batch_size must be a multiple of the 4 replicas, so that each replica's share "
        "of the batch splits into d_steps=2 equal slices. Received: batch_size=6, replicas=4")
    validation.validate(tiny_config, num_replicas=3)   # 6 * 2 images: 4 per replica, 2 slices


def test_deep_generator_has_no_noise_chunks(tiny_config):
    tiny_config.model.noise_dim = 15
    with pytest.raises(validation.ConfigError, match="noise_dim must be a multiple of 4"):
        validation.validate(tiny_config, architecture=arch)
    tiny_config.model.deep = True   # BigGAN-deep feeds the whole noise to every block
    validation.validate(tiny_config, architecture=arch)


def _shipped_configs():
    """Every module of `logit_inversion/configs/` with a `get_config`, by name."""
    found = {}
    for info in pkgutil.iter_modules(configs.__path__):
        module = importlib.import_module(f"{configs.__name__}.{info.name}")
        if hasattr(module, "get_config"):
            found[info.name] = module.get_config
    return found


SHIPPED = _shipped_configs()


def _keys(config, prefix=""):
    for name in config.keys():
        if hasattr(config[name], "keys"):
            yield from _keys(config[name], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_the_walk_finds_the_shipped_configs():
    assert {"demo", "cifar10", "cifar10_cpu", "dosovitskiy_brox", "imagenet64",
            "imagenet128"} <= set(SHIPPED)


@pytest.mark.parametrize("name", ["base", *sorted(SHIPPED)])
def test_every_key_of_every_shipped_config_has_a_rule(name):
    config = base.get_base_config() if name == "base" else SHIPPED[name]()
    unvalidated = sorted(set(_keys(config)) - set(validation.KEYS))
    assert not unvalidated, f"keys of {name} without a row in validation.KEYS: {unvalidated}"
    # A key of a shipped config that base lacks would have a second default, or none.
    assert set(_keys(config)) == set(_keys(base.get_base_config())), name


def test_every_rule_is_for_a_key_of_base():
    assert set(validation.KEYS) == set(_keys(base.get_base_config()))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_build_and_are_valid(name):
    validation.validate(SHIPPED[name](), num_replicas=8, architecture=arch)


def test_a_config_without_a_key_of_base_is_refused(tiny_config):
    del tiny_config.preflight["num_examples"]
    with pytest.raises(validation.ConfigError) as error:
        validation.validate(tiny_config)
    assert str(error.value) == (
        "config.preflight.num_examples is missing: a config starts from configs/base.py's "
        "get_base_config(). Received: a config without preflight.num_examples")


def test_validation_imports_nothing_above_configs():
    code = ("import sys, logit_inversion.configs.validation; "
            "print(sorted(m for m in sys.modules if m.startswith('logit_inversion.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    loaded = eval(out.stdout)   # pylint: disable=eval-used
    assert all(m.startswith("logit_inversion.configs") for m in loaded), loaded


def test_rules_are_a_table_others_can_extend(tiny_config, monkeypatch):
    tiny_config.extra_batches = 0
    validation.validate(tiny_config)   # a caller's own count of 0 is fine
    monkeypatch.setitem(validation.KEYS, "extra_batches", validation.integer(1))
    with pytest.raises(validation.ConfigError, match="extra_batches must be an integer >= 1"):
        validation.validate(tiny_config)


@pytest.mark.processes
def test_bin_train_exits_with_one_line_and_no_workdir(tiny_classifier_path, shapes_data_dir,
                                                       tmp_path):
    # Before validation this run exited 0 and wrote a metrics.json for an untrained model.
    flag = "--config.num_steps=-10"
    message = "config.num_steps must be an integer >= 1. Received: num_steps=-10"
    workdir = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", "train"), f"--workdir={workdir}",
         f"--config.classifier={tiny_classifier_path}", f"--config.data_dir={shapes_data_dir}",
         "--config.model.ch=4", "--config.batch_size=8", flag],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == f"bin/train: error: {message}"
    assert "Traceback" not in out.stderr
    assert not workdir.exists()


def test_a_run_gives_back_the_callers_dtype_policy(tiny_config, tmp_path):
    # mixed_precision sets Keras's global policy for the run only; here the run stops after
    # setting it (a held-out slice too small for the grid), and the policy is restored.
    tiny_config.mixed_precision = True
    tiny_config.eval_split = "test[:2]"
    with pytest.raises(ValueError, match="The eval split 'test\\[:2\\]'"):
        training.train(tiny_config, str(tmp_path / "run"), verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"
