"""Learning-rate schedules of the GAN optimizers."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="logit_inversion")
class LateLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant `rate` until step `start`, then linearly down to 0 at step `end`.

    A GAN at a constant rate keeps circling its equilibrium: on `shapes`, whole classes come
    and go between probes 200 steps apart, and the run ends wherever the circle was. Shrinking
    the steps over the last part of training lets the generator (and its EMA) settle.

    Args:
        rate: the initial learning rate.
        start: optimizer step at which the decay begins.
        end: optimizer step at which the rate reaches 0 (held there after).
    """

    def __init__(self, rate, start, end):
        if not 0 <= start < end:
            raise ValueError(f"The decay needs 0 ≤ start < end. Received: start={start}, "
                             f"end={end}")
        self.rate, self.start, self.end = float(rate), int(start), int(end)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        left = ops.clip((self.end - step) / float(self.end - self.start), 0.0, 1.0)
        return self.rate * left

    def get_config(self):
        return {"rate": self.rate, "start": self.start, "end": self.end}


def learning_rate(rate, num_steps, decay_from, steps_per_generator_step=1):
    """The rate (or schedule) of an optimizer taking `steps_per_generator_step` steps per
    generator step, over `num_steps` generator steps; `decay_from` in (0, 1]: fraction of
    training after which the rate decays linearly to 0 (1 = constant)."""
    if decay_from >= 1.0:
        return rate
    scale = steps_per_generator_step
    return LateLinearDecay(rate, int(decay_from * num_steps) * scale, num_steps * scale)
