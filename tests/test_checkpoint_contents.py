"""A checkpoint must hold every variable of G, G_ema and D: resuming, exporting and analysing a
workdir all read the weights back from it."""

import numpy as np

from logit_inversion import training
from logit_inversion.training import checkpoints


def _fresh(config):
    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    return inverter


def test_restore_brings_back_every_weight(tiny_config, tmp_path):
    saved, restored = _fresh(tiny_config), _fresh(tiny_config)
    # Fresh builds draw different random weights; make the difference certain anyway.
    for variable in saved.generator.weights + saved.discriminator.weights:
        variable.assign(variable + 0.5)
    for ema, online in zip(saved.ema_generator.weights, saved.generator.weights):
        ema.assign(online - 0.25)
    checkpoints.make_manager(saved, str(tmp_path), keep=1).save()

    manager = checkpoints.make_manager(restored, str(tmp_path), keep=1)
    manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    for name in ("generator", "ema_generator", "discriminator"):
        before, after = getattr(saved, name).weights, getattr(restored, name).weights
        assert len(after) == len(before) > 10
        for a, b in zip(before, after):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{name}: {b.path}")
