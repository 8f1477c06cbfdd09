"""Keras callbacks that turn `fit()` into a resumable, observable training run."""

import math
import re
import time

import keras
import tensorflow as tf

from logit_inversion import visualize
from logit_inversion.models import noise as noise_lib

# The seed of the ε of the TensorBoard grid and of reconstructions.png: the export's default
# seed, so the grid shows what `serving_default` would return for its images.
GRID_SEED = 0


def grid_noise(inverter, n, seed=GRID_SEED):
    """ε `[n, Z]` of the training outputs' grids: `models.noise.noise(n, Z, seed)`, the
    package's one seed → ε convention (zeros for a deterministic decoder, as it was trained)."""
    noise = noise_lib.noise(n, int(inverter.noise_dim), seed)
    if getattr(inverter, "deterministic", False):
        return tf.zeros_like(noise)
    return noise


def _step(model):
    return int(model.g_optimizer.iterations.numpy())


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where it happened."""

    def __init__(self):
        super().__init__()
        self.failure = None

    def on_train_batch_end(self, batch, logs=None):
        for key in ("d_loss", "g_loss"):
            value = float((logs or {}).get(key, 0.0))
            if not math.isfinite(value):
                self.failure = (key, value, _step(self.model))
                self.model.stop_training = True
                return


class Checkpointer(keras.callbacks.Callback):
    """Saves a checkpoint at the end of every Keras epoch (= `checkpoint_every` steps),
    unless the guard saw a non-finite loss, so the last good checkpoint survives."""

    def __init__(self, manager, guard):
        super().__init__()
        self.manager = manager
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failure is None:
            self.manager.save(checkpoint_number=_step(self.model))


class Throughput(keras.callbacks.Callback):
    """Measures training steps/s between consecutive batch ends, so the first (tracing,
    XLA compilation) batch of a run is excluded; checkpoint saves are included."""

    def __init__(self, steps_per_execution=1):
        super().__init__()
        self.steps_per_execution = steps_per_execution
        self.steps = 0
        self.seconds = 0.0
        self._last = None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._last is not None:
            self.seconds += now - self._last
            self.steps += self.steps_per_execution
        self._last = now

    @property
    def steps_per_second(self):
        return self.steps / self.seconds if self.seconds else float("nan")


class TensorBoardLogger(keras.callbacks.Callback):
    """Scalars every `every` steps and an originals | reconstructions grid each epoch, its ε
    from `grid_noise` (seed `GRID_SEED`)."""

    def __init__(self, logdir, fixed_images, every=50):
        super().__init__()
        self.writer = tf.summary.create_file_writer(logdir)
        self.fixed_images = fixed_images
        self.every = every
        self.fixed_noise = None

    def _scalars(self, logs):
        with self.writer.as_default(step=_step(self.model)):
            for key, value in (logs or {}).items():
                tf.summary.scalar(f"train/{key}", float(value))

    def on_train_batch_end(self, batch, logs=None):
        if _step(self.model) % self.every == 0:
            self._scalars(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._scalars(logs)
        if self.fixed_noise is None:
            self.fixed_noise = grid_noise(self.model, len(self.fixed_images))
        logits = self.model.classifier(self.fixed_images)
        recon = self.model.generate(logits, self.fixed_noise)
        grid = visualize.grid_array([visualize.to_uint8(self.fixed_images),
                                     visualize.to_uint8(recon)])
        with self.writer.as_default(step=_step(self.model)):
            tf.summary.image("originals_over_reconstructions", grid[None], max_outputs=1)
        self.writer.flush()

    def log_held_out(self, metrics):
        """The final held-out scores of `metrics` (as `trainer.train` writes them): overall and
        per-class agreement and ε-diversity, at the last step, under `held_out/`."""
        def scalar(tag, value):
            if value is not None:
                tf.summary.scalar(tag, float(value))

        with self.writer.as_default(step=int(metrics["steps"])):
            scalar("held_out/agreement", metrics.get("agreement"))
            scalar("held_out/worst_class_agreement", metrics.get("worst_class_agreement"))
            scalar("held_out/epsilon_diversity", metrics.get("epsilon_diversity"))
            for name, row in (metrics.get("per_class") or {}).items():
                # Summary tags allow letters, digits and `._-/`; class names may hold spaces.
                tag = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
                scalar(f"held_out/agreement_per_class/{tag}", row.get("agreement"))
                scalar(f"held_out/epsilon_diversity_per_class/{tag}",
                       row.get("epsilon_diversity"))
        self.writer.flush()
