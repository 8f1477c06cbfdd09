"""The late linear learning-rate decay of the GAN optimizers."""

import keras
import pytest

from logit_inversion.training import schedules


def test_rate_is_constant_then_falls_linearly_to_zero():
    s = schedules.learning_rate(1e-3, 1000, 0.6)
    rates = [float(s(t)) for t in (0, 599, 600, 800, 1000, 5000)]
    assert rates[:3] == pytest.approx([1e-3, 1e-3, 1e-3])
    assert rates[3] == pytest.approx(0.5e-3) and rates[4] == rates[5] == 0.0


def test_discriminator_schedule_counts_its_own_steps():
    # With 2 D steps per G step, D's optimizer is at step 2t when G's is at t: both decay
    # over the same generator steps.
    g = schedules.learning_rate(1e-3, 1000, 0.5)
    d = schedules.learning_rate(4e-3, 1000, 0.5, steps_per_generator_step=2)
    for t in (400, 750, 1000):
        assert float(d(2 * t)) / 4e-3 == pytest.approx(float(g(t)) / 1e-3)


def test_no_decay_is_a_plain_rate_and_bad_bounds_are_refused():
    assert schedules.learning_rate(2e-4, 1000, 1.0) == 2e-4
    with pytest.raises(ValueError, match="start=10, end=10"):
        schedules.LateLinearDecay(1e-3, 10, 10)
    restored = keras.optimizers.Adam.from_config(
        keras.optimizers.Adam(schedules.LateLinearDecay(1e-3, 5, 10)).get_config())
    assert float(restored.learning_rate) == pytest.approx(1e-3)
