"""oneDNN's bfloat16 rewrite: when it is on, that it reaches only the training function, and
the config key that turns it on."""

import os

import pytest
import tensorflow as tf

from logit_inversion import training
from logit_inversion.configs import validation
from logit_inversion.training import cpu_bfloat16

# bfloat16 keeps 8 significant bits: 1 + 2⁻¹⁰ rounds to 1, in float32 it does not.
_OFF_GRID = 1.0 + 2.0 ** -10


def test_cpu_flags_are_read_from_the_flags_line(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16\nbugs\t: none\n")
    assert cpu_bfloat16.cpu_flags(str(path)) == {"fpu", "sse2", "avx512f", "amx_bf16"}
    assert cpu_bfloat16.cpu_flags(str(tmp_path / "missing")) == set()


def test_auto_follows_the_cpu_flags(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert cpu_bfloat16.resolve("auto", flags={"avx512f", "amx_bf16"}) is True
    assert cpu_bfloat16.resolve("auto", flags={"avx512f", "avx512_bf16"}) is True
    assert cpu_bfloat16.resolve("auto", flags={"avx512f", "avx2"}) is False
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")   # no oneDNN kernels: nothing to gain
    assert cpu_bfloat16.resolve("auto", flags={"amx_bf16"}) is False
    assert cpu_bfloat16.resolve("on", flags=set()) is True
    assert cpu_bfloat16.resolve("off", flags={"amx_bf16"}) is False


@pytest.mark.parametrize("bad", [True, "yes", None])
def test_bad_setting_fails_with_one_line(bad):
    with pytest.raises(ValueError, match=f"Received: cpu_bfloat16={bad!r}") as error:
        cpu_bfloat16.resolve(bad)
    assert "\n" not in str(error.value)


def test_config_validation_names_the_key(tiny_config):
    tiny_config.cpu_bfloat16 = "always"
    with pytest.raises(validation.ConfigError, match="cpu_bfloat16 must be one of 'auto', "
                                                      "'on', 'off'. Received: "):
        validation.validate(tiny_config)


@pytest.mark.skipif(not cpu_bfloat16.hardware_supported(),
                    reason="no bfloat16 units on this CPU (amx_bf16 / avx512_bf16)")
def test_rewrite_reaches_only_convolutions_called_inside_it():
    x = tf.fill((1, 2, 2, 4), _OFF_GRID)
    identity = tf.reshape(tf.eye(4), (1, 1, 4, 4))
    conv = tf.function(lambda a: tf.nn.conv2d(a, identity, 1, "SAME")[0, 0, 0, 0])
    matmul = tf.function(lambda a: tf.matmul(tf.reshape(a, (4, 4)), tf.eye(4))[0, 0])
    before = float(conv(x))
    with cpu_bfloat16.rewrite():
        inside, matmul_inside = float(conv(x)), float(matmul(x))
    after = float(conv(x))
    assert before == after == pytest.approx(_OFF_GRID, abs=0)
    assert inside == 1.0   # the same traced function, instantiated again under the rewrite
    assert matmul_inside == pytest.approx(_OFF_GRID, abs=0)   # FLOAT32_OPS: not rewritten
    assert "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE" not in os.environ


def test_scoped_wraps_once():
    calls = []
    function = cpu_bfloat16.scoped(lambda v: calls.append(v) or v)
    assert cpu_bfloat16.scoped(function) is function
    assert function(3) == 3 and calls == [3]


def test_fit_calls_the_wrapped_training_function(tiny_config):
    inverter = training.build_inverter(tiny_config)
    wrapped = []

    def wrapper(train_function):
        def call(iterator):
            wrapped.append(True)
            return train_function(iterator)
        return call

    tiny_config.cpu_bfloat16 = "off"
    training.compile_inverter(inverter, tiny_config)
    assert inverter.train_function_wrapper is None
    inverter.compile(inverter.g_optimizer, inverter.d_optimizer, train_function_wrapper=wrapper)
    # Under test is what `fit` calls, not the step: a one-op step spares tracing the real one
    # (`test_train_runs_and_records_the_rewrite` runs that under the bfloat16 wrapper).
    inverter.train_step = lambda data: {"g_loss": tf.reduce_mean(data["image"])}
    images = tf.random.uniform((8, tiny_config.resolution, tiny_config.resolution, 3), -1, 1)
    data = tf.data.Dataset.from_tensors({"image": images}).repeat()
    history = inverter.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    assert wrapped == [True, True]
    assert history.history["g_loss"] == [pytest.approx(float(tf.reduce_mean(images)))]
    with pytest.raises(ValueError, match="Received: train_function_wrapper='bf16'"):
        inverter.compile(inverter.g_optimizer, inverter.d_optimizer,
                         train_function_wrapper="bf16")


def test_config_on_compiles_the_rewrite_in(tiny_config):
    tiny_config.cpu_bfloat16 = "on"
    inverter = training.build_inverter(tiny_config)
    training.compile_inverter(inverter, tiny_config)
    assert inverter.train_function_wrapper is cpu_bfloat16.scoped
    inverter.make_train_function()
    assert getattr(inverter.train_function, "_cpu_bfloat16", False)
    assert inverter.make_train_function() is inverter.train_function   # wrapped once


def test_rewrite_keeps_and_restores_the_users_list(monkeypatch):
    variable = "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE"
    monkeypatch.setenv(variable, "Conv2D")
    with cpu_bfloat16.rewrite():
        assert os.environ[variable].split(",") == ["Conv2D", *cpu_bfloat16.FLOAT32_OPS]
    assert os.environ[variable] == "Conv2D"


def test_tpu_strategy_never_gets_the_cpu_rewrite():
    tpu = tf.distribute.TPUStrategy.__new__(tf.distribute.TPUStrategy)   # no TPU needed
    assert cpu_bfloat16.resolve("auto", flags={"amx_bf16"}, strategy=tpu) is False
    with pytest.raises(ValueError, match="set mixed_precision=True instead"):
        cpu_bfloat16.resolve("on", strategy=tpu)


def test_train_runs_and_records_the_rewrite(tiny_config, tmp_path, capsys):
    tiny_config.cpu_bfloat16 = "on"
    metrics = training.train(tiny_config, str(tmp_path / "run"), verbose=0)
    assert metrics["cpu_bfloat16"] is True and metrics["steps"] == tiny_config.num_steps
    assert "convolutions in bfloat16 (cpu_bfloat16='on')" in capsys.readouterr().out
