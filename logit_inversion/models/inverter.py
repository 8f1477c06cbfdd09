"""`LogitInverter`: the frozen classifier Φ, the generator G, its EMA copy and D in one
`keras.Model` whose `train_step` is the paper's hinge-loss GAN update.

`fit()` drives training (callbacks do checkpoints, TensorBoard, images); `call(images)`
returns reconstructions G_ema(Φ(x), ε) and `generate(logits, noise)` exposes G_ema.
"""

import keras
from keras import ops
import tensorflow as tf

from logit_inversion.models import losses, metrics
from logit_inversion.models.generator import Generator


def _num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


class LogitInverter(keras.Model):
    """Feedforward inverter of a frozen classifier.

    Args:
        classifier: a frozen layer, images `[batch, h, w, 3]` in [-1, 1] → logits `[batch, K]`
            (see `logit_inversion.classifiers.load_classifier`).
        generator: `Generator`; G(logits, noise) → `[batch, R, R, 3]` in [-1, 1].
        discriminator: `Discriminator`; D(images, logits) → scores `[batch]`.
        d_steps: discriminator updates per generator update (BigGAN: 2).
        ema_decay: decay of the generator's exponential moving average.
        ema_start: the EMA copies G exactly until this many generator steps have run.
        consistency_weight: weight of the optional logit-consistency term (0 = the paper).
        pixel_weight: weight of the optional pixel L1 term (0 = the paper).

    Example:
        inverter = LogitInverter(classifier, Generator(32, ch=8, noise_dim=24),
                                 Discriminator(32, ch=8))
        inverter.build_all(batch_size=2)
        reconstructions = inverter(images)   # [batch, 32, 32, 3] in [-1, 1]
    """

    def __init__(self, classifier, generator, discriminator, d_steps=2, ema_decay=0.999,
                 ema_start=0, consistency_weight=0.0, pixel_weight=0.0,
                 consistency_temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        if d_steps < 1:
            raise ValueError(f"d_steps must be ≥ 1. Received: d_steps={d_steps}")
        self.classifier = classifier
        self.generator = generator
        self.discriminator = discriminator
        # Same architecture, separate weights: outputs come from the smoothed copy.
        self.ema_generator = Generator.from_config(
            {**generator.get_config(), "name": "ema_generator"})
        self.d_steps = d_steps
        self.ema_decay = ema_decay
        self.ema_start = ema_start
        self.consistency_weight = consistency_weight
        self.pixel_weight = pixel_weight
        self.consistency_temperature = consistency_temperature
        self.trackers = {name: keras.metrics.Mean(name=name) for name in
                         ("d_loss", "g_loss", "d_real", "d_fake", "agreement")}

    # ---- construction -------------------------------------------------------------

    @property
    def resolution(self):
        return self.generator.resolution

    @property
    def noise_dim(self):
        return self.generator.noise_dim

    @property
    def num_classes(self):
        return self.classifier.num_classes

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build_all(self, batch_size=2):
        """Creates every variable (call inside `strategy.scope()`) and syncs the EMA copy."""
        r, k = self.resolution, self.num_classes
        images = ops.zeros((batch_size, r, r, 3))
        # Not Φ(images): restored classifier functions refuse cross-replica context.
        logits = ops.zeros((batch_size, k))
        noise = ops.zeros((batch_size, self.noise_dim))
        self.generator(logits, noise)
        self.ema_generator(logits, noise)
        self.discriminator(images, logits)
        for ema, var in zip(self.ema_generator.weights, self.generator.weights):
            ema.assign(var)
        self.built = True

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        """Attaches the two Adam optimizers and builds their slots now: under a
        distribution strategy, slot variables cannot be created lazily inside the replica
        function."""
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    # ---- inference ----------------------------------------------------------------

    def sample_noise(self, batch_size, seed=None):
        """Standard normal noise `[batch_size, noise_dim]`."""
        if seed is None:
            return tf.random.normal((batch_size, self.noise_dim))
        return tf.random.stateless_normal((batch_size, self.noise_dim), seed=seed)

    def generate(self, logits, noise):
        """G_ema(logits, noise): `[batch, K]`, `[batch, noise_dim]` → `[batch, R, R, 3]`."""
        return self.ema_generator(logits, noise, training=False)

    def call(self, images, training=False):
        """Reconstructions G_ema(Φ(x), ε) of images `[batch, h, w, 3]` in [-1, 1]."""
        logits = self.classifier(images)
        return self.generate(logits, self.sample_noise(ops.shape(images)[0]))

    # ---- training -----------------------------------------------------------------

    def _update_ema(self):
        step = tf.cast(self.g_optimizer.iterations, "float32")
        decay = tf.where(step < float(self.ema_start), 0.0, self.ema_decay)
        pairs = list(zip(self.ema_generator.weights, self.generator.weights))

        def update(strategy):
            # Runs in cross-replica context so every device's copy gets the same update.
            for ema, var in pairs:
                strategy.extended.update(
                    ema.value, lambda e, v: e.assign(decay * e + (1.0 - decay) * v),
                    args=(var.value,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            update, tf.distribute.get_strategy())

    def _discriminator_step(self, images, logits):
        noise = self.sample_noise(ops.shape(images)[0])
        fakes = self.generator(logits, noise, training=True)
        with tf.GradientTape() as tape:
            # One pass over real ⊕ fake: D has no batch norm, so this equals two passes.
            scores = self.discriminator(ops.concatenate([images, fakes], 0),
                                        ops.concatenate([logits, logits], 0), training=True)
            real, fake = ops.split(scores, 2)
            d_loss = losses.discriminator_hinge_loss(real, fake)
            scaled = d_loss / _num_replicas()
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return d_loss, real, fake

    def _generator_step(self, images, logits):
        noise = self.sample_noise(ops.shape(images)[0])
        with tf.GradientTape() as tape:
            fakes = self.generator(logits, noise, training=True)
            g_loss = losses.generator_hinge_loss(
                self.discriminator(fakes, logits, training=True))
            total = g_loss
            fake_logits = self.classifier(fakes)
            if self.consistency_weight:
                total += self.consistency_weight * losses.logit_consistency_loss(
                    fake_logits, logits, self.consistency_temperature)
            if self.pixel_weight:
                total += self.pixel_weight * losses.pixel_loss(fakes, images)
            scaled = total / _num_replicas()
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return g_loss, metrics.top1_agreement(logits, fake_logits)

    def train_step(self, data):
        images = data["image"] if isinstance(data, dict) else data
        logits = ops.stop_gradient(self.classifier(images))
        # Each discriminator step sees its own slice of the batch, as BigGAN feeds each
        # D step a fresh real batch; the generator step reuses the first slice's logits.
        image_chunks = ops.split(images, self.d_steps)
        logit_chunks = ops.split(logits, self.d_steps)
        for x, z in zip(image_chunks, logit_chunks):
            d_loss, real, fake = self._discriminator_step(x, z)
        g_loss, agreement = self._generator_step(image_chunks[0], logit_chunks[0])
        self._update_ema()
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss), ("agreement", agreement),
                            ("d_real", ops.mean(real)), ("d_fake", ops.mean(fake))):
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def test_step(self, data):
        """Held-out agreement of the EMA generator's reconstructions."""
        images = data["image"] if isinstance(data, dict) else data
        logits = self.classifier(images)
        recon_logits = self.classifier(self.generate(logits,
                                                     self.sample_noise(ops.shape(images)[0])))
        self.trackers["agreement"].update_state(metrics.top1_agreement(logits, recon_logits))
        return {"agreement": self.trackers["agreement"].result()}

    def get_config(self):
        return {"d_steps": self.d_steps, "ema_decay": self.ema_decay,
                "ema_start": self.ema_start, "consistency_weight": self.consistency_weight,
                "pixel_weight": self.pixel_weight,
                "consistency_temperature": self.consistency_temperature}
