"""One way each: one model handle with one checkpoint-coverage policy and one top-1 agreement
(that a training run loads the frozen classifier once is checked on test_training.py's run)."""

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion import testing
from logit_inversion.models import metrics


@pytest.fixture(scope="module")
def partial_workdir(tmp_path_factory, tiny_classifier_path, shapes_data_dir):
    """A workdir whose checkpoint lacks one variable of the EMA generator; returns (workdir,
    the missing variable's path, the inverter it was written from)."""
    from logit_inversion import training
    from logit_inversion.training import checkpoints

    config = testing.tiny_config(tiny_classifier_path, shapes_data_dir, standing_stats_batches=0)
    workdir = str(tmp_path_factory.mktemp("partial"))
    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    checkpoints.record_config(workdir, config)
    ema = checkpoints.variables_by_path(inverter.ema_generator)
    dropped = sorted(ema)[len(ema) // 2]
    del ema[dropped]
    checkpoint = tf.train.Checkpoint(
        generator=checkpoints.variables_by_path(inverter.generator), ema_generator=ema,
        discriminator=checkpoints.variables_by_path(inverter.discriminator),
        g_optimizer=inverter.g_optimizer, d_optimizer=inverter.d_optimizer)
    tf.train.CheckpointManager(checkpoint, f"{workdir}/checkpoints", max_to_keep=1).save()
    return workdir, dropped, inverter


def _open_as_every_command(workdir, inverter):
    from logit_inversion import training
    from logit_inversion.analysis import model as analysis_model
    from logit_inversion.evaluation import models as evaluation_models
    from logit_inversion.serving import reconstructions

    return {"bin/analyze": lambda: analysis_model.open_model(workdir),
            "bin/evaluate": lambda: evaluation_models.load_model(workdir),
            "bin/reconstruct": lambda: reconstructions.load_model(workdir),
            "bin/export": lambda: training.restore_inverter(workdir),
            "bin/benchmark": lambda: evaluation_models.check_checkpoint_covers_generator(
                inverter, workdir)}


def test_a_partial_checkpoint_is_refused_by_every_command_naming_the_variable(partial_workdir):
    workdir, dropped, inverter = partial_workdir
    for command, open_it in _open_as_every_command(workdir, inverter).items():
        with pytest.raises(ValueError) as error:
            open_it()
        message = str(error.value)
        assert dropped in message and "\n" not in message, (command, message)
        assert f"Received: workdir={workdir}" in message, (command, message)


def test_a_complete_checkpoint_covers_every_variable(tmp_path, tiny_config):
    from logit_inversion import training
    from logit_inversion.training import checkpoints

    inverter = training.build_inverter(tiny_config)
    training.compile_inverter(inverter, tiny_config)
    path = checkpoints.make_manager(inverter, str(tmp_path), 1).save()
    assert checkpoints.missing_variables(path, inverter.ema_generator) == []
    assert len(inverter.ema_generator.weights) > 0


def test_one_top1_agreement():
    from logit_inversion.analysis import common
    from logit_inversion.evaluation import classification

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 5)), rng.normal(size=(50, 5))
    b[:20] = a[:20]
    expected = float(metrics.top1_agreement(a, b))
    assert 0.4 <= expected < 1.0
    assert common.agreement(a, b) == expected
    assert float(classification.top_k_agreement(a, b, 1)) == expected
    # Ties: the arg-max convention (first maximum), not "any tied class is in the top 1".
    tie = np.array([[0.0, 1.0, 0.0]]), np.array([[0.5, 0.5, 0.0]])
    assert float(metrics.top1_agreement(*tie)) == 0.0
    assert float(classification.top_k_agreement(*tie, 1)) == 0.0
