"""`LogitInverter`: the frozen classifier Φ, the generator G, its EMA copy and D in one
`keras.Model` whose `train_step` is the paper's hinge-loss GAN update.

`fit()` drives training (callbacks do checkpoints, TensorBoard, images); `call(images)`
returns reconstructions G_ema(Φ(x), ε) and `generate(logits, noise)` exposes G_ema.

G_ema's batch-norm statistics: during training `_update_ema` averages the online generator's
moving statistics into G_ema's, a rough stand-in. BigGAN's "standing statistics" measure them
on G_ema itself: call `accumulate_standing_stats` after training (or after restoring a
checkpoint) and before evaluating or exporting; any later train step starts blending the
online generator's statistics back in.
"""

import numbers

import keras
from keras import ops
import numpy as np
import tensorflow as tf

from logit_inversion.models import losses, metrics
from logit_inversion.models.generator import Generator
from logit_inversion.models.layers import BatchStatisticsRecorder

# Every place that draws ε has its own noise stream, so no two draws share noise. The
# discriminator updates of a train step use streams 0 .. d_steps − 1.
_GENERATOR_STREAM = 1000
# The diversity term's second draw of noise for the same logits.
_DIVERSITY_STREAM = 1001
_EVAL_STREAM = 1001
_STANDING_STREAM = 1002


def _num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def feature_loss(reconstruction_features, features):
    """Mean of ‖C(x̂) − C(x)‖² / ‖C(x)‖²: features `[batch, F]` ×2 → scalar. Relative, so
    its weight means the same whatever the scale of the comparator's features."""
    a = ops.cast(reconstruction_features, "float32")
    b = ops.cast(features, "float32")
    return ops.mean(ops.sum(ops.square(a - b), -1) / (ops.sum(ops.square(b), -1) + 1e-12))


def _replica_id():
    """The global replica id (unique across workers); 0 in cross-replica context."""
    context = tf.distribute.get_replica_context()
    return 0 if context is None else context.replica_id_in_sync_group


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
        consistency_start: generator steps before the consistency term is switched on. The
            term alone has a trap: with a globally pooled Φ, an empty field reads as less
            unlike a square than the blob an early G draws, so G can learn to draw nothing
            for a class and never leave it; D first teaches shapes, then the term their class.
        r1_weight: γ of the zero-centred gradient penalty γ/2·E‖∇ₓD(x, z)‖² on real images
            (Mescheder et al., 2018; 0 = the paper).
        pixel_weight: weight of the optional pixel L1 term (0 = the paper).
        diversity_weight: weight of the optional diversity-sensitive term (Yang et al., ICLR
            2019; 0 = the paper): −min(‖G(z, ε₁) − G(z, ε₂)‖₁ / ‖ε₁ − ε₂‖₁, diversity_clip)
            over half the batch, drawn a second time with new noise. It rewards a generator
            whose samples of the same logits differ, up to the clip, past which it adds no
            gradient, so it counters noise collapse without competing with realism.
        diversity_clip: where the diversity term stops rewarding (mean absolute pixel change
            per unit of mean absolute noise change).
        seed: integer seed of the noise ε drawn in training, evaluation and standing
            statistics. Each draw is a pure function of (seed, step, global replica id), so
            replicas and workers draw different noise and a rerun or resume repeats it.
        deterministic: hold the noise at zero everywhere, G(z, 0): a deterministic decoder
            (the Dosovitskiy & Brox baseline, `configs/dosovitskiy_brox.py`).
        feature_weight: weight of the optional feature term ‖C(x̂) − C(x)‖² / ‖C(x)‖² in a
            comparator network C (0 = the paper).
        feature_extractor: C, images `[batch, h, w, 3]` in [-1, 1] → features `[batch, F]`
            (e.g. `classifiers.features.load_feature_extractor`); needed when
            `feature_weight` > 0.

    Example:
        inverter = LogitInverter(classifier, Generator(32, ch=8, noise_dim=24),
                                 Discriminator(32, ch=8))
        inverter.build_all(batch_size=2)
        reconstructions = inverter(images)   # [batch, 32, 32, 3] in [-1, 1]
    """

    def __init__(self, classifier, generator, discriminator, d_steps=2, ema_decay=0.999,
                 ema_start=0, consistency_weight=0.0, pixel_weight=0.0,
                 consistency_temperature=1.0, seed=0, deterministic=False, feature_weight=0.0,
                 diversity_weight=0.0, diversity_clip=0.5, consistency_start=0, r1_weight=0.0,
                 feature_extractor=None, agreement_every=1, **kwargs):
        super().__init__(**kwargs)
        if feature_weight and feature_extractor is None:
            raise ValueError("feature_weight > 0 needs a feature_extractor. Received: "
                             f"feature_weight={feature_weight}, feature_extractor=None")
        if d_steps < 1:
            raise ValueError(f"d_steps must be ≥ 1. Received: d_steps={d_steps}")
        if (isinstance(agreement_every, bool) or not isinstance(agreement_every, numbers.Integral)
                or agreement_every < 1):
            raise ValueError(f"agreement_every must be an integer ≥ 1. "
                             f"Received: agreement_every={agreement_every!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seed must be an integer. Received: seed={seed!r}")
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
        self.consistency_start = int(consistency_start)
        self.r1_weight = r1_weight
        self.pixel_weight = pixel_weight
        self.diversity_weight = diversity_weight
        self.diversity_clip = diversity_clip
        self.consistency_temperature = consistency_temperature
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.feature_weight = feature_weight
        self.feature_extractor = feature_extractor
        self.agreement_every = int(agreement_every)
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
        # After building, so that the setter reaches every variable: the EMA copy is
        # written by `_update_ema` and `accumulate_standing_stats`, never by an optimizer.
        self.ema_generator.trainable = False
        for ema, var in zip(self.ema_generator.weights, self.generator.weights):
            ema.assign(var)
        self.built = True

    def compile(self, g_optimizer, d_optimizer, train_function_wrapper=None, **kwargs):
        """Attaches the two Adam optimizers and builds their slots now: under a
        distribution strategy, slot variables cannot be created lazily inside the replica
        function. Keras's own `optimizer` stays None: its default ("rmsprop") would be
        built over every trainable variable, slots that no step uses.

        `train_function_wrapper`: optional; takes the training function Keras builds and
        returns what `fit` calls instead (e.g. `training.cpu_bfloat16.scoped`)."""
        if "optimizer" in kwargs:
            raise ValueError("LogitInverter.compile takes g_optimizer and d_optimizer, not "
                             f"optimizer. Received: optimizer={kwargs['optimizer']!r}")
        if train_function_wrapper is not None and not callable(train_function_wrapper):
            raise ValueError("train_function_wrapper must be callable or None. Received: "
                             f"train_function_wrapper={train_function_wrapper!r}")
        self.train_function_wrapper = train_function_wrapper
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force)
        wrapper = getattr(self, "train_function_wrapper", None)
        if wrapper is not None:
            self.train_function = wrapper(self.train_function)
        return self.train_function

    # ---- noise --------------------------------------------------------------------

    def sample_noise(self, batch_size, seed=None):
        """Standard normal noise `[batch_size, noise_dim]`; `seed`: optional stateless seed
        (a pair of integers) for repeatable draws."""
        if self.deterministic:
            return tf.zeros((batch_size, self.noise_dim))
        if seed is None:
            return tf.random.normal((batch_size, self.noise_dim))
        return tf.random.stateless_normal((batch_size, self.noise_dim), seed=seed)

    def _noise(self, batch_size, stream, counter):
        """Standard normal noise `[batch_size, noise_dim]` as a pure function of (seed,
        stream, counter, global replica id). Stateless ops, so XLA compiles it and honours
        the seed (stateful random ops' seeds are not honoured under XLA/TPU)."""
        if self.deterministic:
            return tf.zeros((batch_size, self.noise_dim))
        key = tf.constant([self.seed, stream], tf.int64)
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(counter, tf.int64))
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(_replica_id(), tf.int64))
        return tf.random.stateless_normal((batch_size, self.noise_dim), seed=key)

    # ---- inference ----------------------------------------------------------------

    def generate(self, logits, noise):
        """G_ema(logits, noise): `[batch, K]`, `[batch, noise_dim]` → `[batch, R, R, 3]`."""
        return self.ema_generator(logits, noise, training=False)

    def call(self, images, training=False):
        """Reconstructions G_ema(Φ(x), ε) of images `[batch, h, w, 3]` in [-1, 1]."""
        logits = self.classifier(images)
        return self.generate(logits, self.sample_noise(ops.shape(images)[0]))

    # ---- training -----------------------------------------------------------------

    def _update_ema(self):
        """G_ema ← decay·G_ema + (1 − decay)·G over every weight, the spectral-norm vectors
        and batch-norm moving statistics included (BigGAN averages buffers too). The moving
        statistics this yields are only a fallback: `accumulate_standing_stats` replaces
        them, and must be rerun after any further training."""
        step = tf.cast(self.g_optimizer.iterations, "float32")
        decay = tf.where(step < float(self.ema_start), 0.0, self.ema_decay)
        strategy = tf.distribute.get_strategy()
        # `extended.update` gives every device's copy the same update, from a replica context
        # (a train step under `strategy.run`) as from the cross-replica one.
        for ema, var in zip(self.ema_generator.weights, self.generator.weights):
            strategy.extended.update(
                ema.value, lambda e, v: e.assign(decay * e + (1.0 - decay) * v),
                args=(var.value,), group=False)

    def _discriminator_step(self, images, logits, noise):
        fakes = self.generator(logits, noise, training=True)
        with tf.GradientTape() as tape:
            # One pass over real ⊕ fake: D has no batch norm, so this equals two passes.
            scores = self.discriminator(ops.concatenate([images, fakes], 0),
                                        ops.concatenate([logits, logits], 0), training=True)
            real, fake = ops.split(scores, 2)
            d_loss = losses.discriminator_hinge_loss(real, fake)
            total = d_loss
            if self.r1_weight:
                total += self.r1_weight / 2.0 * self._real_gradient_norm(images, logits)
            scaled = total / _num_replicas()
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return d_loss, real, fake

    def _real_gradient_norm(self, images, logits):
        """E‖∇ₓD(x, z)‖² over real images (D's tape above records it for the double
        backward pass). Inference mode, so the spectral-norm vectors step once per D step."""
        images = ops.cast(images, "float32")
        with tf.GradientTape() as inner:
            inner.watch(images)
            total = ops.sum(ops.cast(self.discriminator(images, logits, training=False),
                                     "float32"))
        grad = inner.gradient(total, images)
        return ops.mean(ops.sum(ops.square(grad), axis=(1, 2, 3)))

    def _generator_step(self, images, logits, noise, second_noise=None):
        with tf.GradientTape() as tape:
            if second_noise is None:
                fakes = self.generator(logits, noise, training=True)
            else:
                # One call, so batch normalisation sees both draws together.
                half = ops.shape(second_noise)[0]
                both = self.generator(ops.concatenate([logits, logits[:half]], 0),
                                      ops.concatenate([noise, second_noise], 0), training=True)
                fakes, again = both[:ops.shape(logits)[0]], both[ops.shape(logits)[0]:]
            g_loss = losses.generator_hinge_loss(
                self.discriminator(fakes, logits, training=True))
            total = g_loss
            fake_logits = None
            if self.consistency_weight:
                consistency, fake_logits = self._consistency(fakes, logits)
                total += self.consistency_weight * consistency
            if self.pixel_weight:
                total += self.pixel_weight * losses.pixel_loss(fakes, images)
            if self.feature_weight:
                total += self.feature_weight * feature_loss(
                    self.feature_extractor(fakes),
                    ops.stop_gradient(self.feature_extractor(images)))
            if second_noise is not None:
                total -= self.diversity_weight * losses.diversity_reward(
                    fakes[:ops.shape(second_noise)[0]], again, noise[:ops.shape(second_noise)[0]],
                    second_noise, self.diversity_clip)
            scaled = total / _num_replicas()
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return g_loss, fakes, fake_logits

    def _consistency(self, fakes, logits):
        """(the consistency loss, Φ(fakes)). Before `consistency_start` neither Φ's forward
        pass on the fakes nor its backward pass runs (a `tf.cond`, whose gradient runs only
        the taken branch): multiplying the term by 0 would still pay for both, about a third
        of a demo step's FLOPs."""
        def on():
            fake_logits = self.classifier(fakes)
            return (ops.cast(losses.logit_consistency_loss(
                fake_logits, logits, self.consistency_temperature), "float32"),
                ops.cast(fake_logits, logits.dtype))

        if not self.consistency_start:
            return on()
        return tf.cond(self._consistency_active(),
                       on, lambda: (tf.constant(0.0), ops.zeros_like(logits)))

    def _consistency_active(self):
        return self.g_optimizer.iterations >= self.consistency_start

    @property
    def agreement_needs_own_pass(self):
        """True when no loss runs Φ on the fakes' logits, so the training agreement needs a
        Φ pass of its own (the hinge objective, D&B, a non-logit conditioning)."""
        return not self.consistency_weight or hasattr(self.classifier, "logits")

    def _training_agreement(self, images, logits, fakes, fake_logits, step):
        """(top-1 agreement of this step's fakes, its weight in the running mean).

        Free when a loss already ran Φ on the fakes. Otherwise (the paper's hinge objective,
        D&B, a non-logit conditioning) it costs a Φ forward pass that no gradient needs,
        so it is measured only every `agreement_every` generator steps (weight 0 between).
        """
        if not self.agreement_needs_own_pass:
            free = metrics.top1_agreement(logits, fake_logits)
            if not self.consistency_start:
                return free, 1.0
            # Before the term is on, Φ(fakes) was not computed: measure on the schedule.
            return tf.cond(step >= self.consistency_start,
                           lambda: (ops.cast(free, "float32"), tf.constant(1.0)),
                           lambda: self._scheduled_agreement(images, logits, fakes, step))
        return self._scheduled_agreement(images, logits, fakes, step)

    def _scheduled_agreement(self, images, logits, fakes, step):
        def measure():
            if hasattr(self.classifier, "logits"):   # conditioned on another layer
                return metrics.top1_agreement(*self.classifier_logits(images, fakes))
            return metrics.top1_agreement(logits, self.classifier(fakes))

        if self.agreement_every == 1:
            return ops.cast(measure(), "float32"), tf.constant(1.0)
        due = ops.equal(step % self.agreement_every, 0)
        value = tf.cond(due, lambda: ops.cast(measure(), "float32"), lambda: tf.constant(0.0))
        return value, ops.cast(due, "float32")

    def classifier_logits(self, *images):
        """Φ's logits of each image batch: the conditioning vectors, unless the classifier
        conditions on another layer (then its `logits`, on which agreement is measured)."""
        logits_fn = getattr(self.classifier, "logits", self.classifier)
        return [logits_fn(x) for x in images]

    def train_step(self, data):
        images = data["image"] if isinstance(data, dict) else data
        logits = ops.stop_gradient(self.classifier(images))
        # The noise counter: the generator step, restored with the optimizer on resume.
        step = ops.convert_to_tensor(self.g_optimizer.iterations)
        # Each discriminator step sees its own slice of the batch, as BigGAN feeds each
        # D step a fresh real batch; the generator step reuses the first slice's logits.
        image_chunks = ops.split(images, self.d_steps)
        logit_chunks = ops.split(logits, self.d_steps)
        for stream, (x, z) in enumerate(zip(image_chunks, logit_chunks)):
            noise = self._noise(ops.shape(x)[0], stream, step)
            d_loss, real, fake = self._discriminator_step(x, z, noise)
        x, z = image_chunks[0], logit_chunks[0]
        noise = self._noise(ops.shape(x)[0], _GENERATOR_STREAM, step)
        second = (self._noise(ops.shape(x)[0] // 2, _DIVERSITY_STREAM, step)
                  if self.diversity_weight and not self.deterministic else None)
        g_loss, fakes, fake_logits = self._generator_step(x, z, noise, second)
        agreement, weight = self._training_agreement(x, z, fakes, fake_logits, step)
        self._update_ema()
        self.trackers["agreement"].update_state(agreement, sample_weight=weight)
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss),
                            ("d_real", ops.mean(real)), ("d_fake", ops.mean(fake))):
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def test_step(self, data):
        """Held-out scores of the EMA generator: top-1 agreement Φ(G_ema(Φ(x), ε)) vs Φ(x),
        and D's hinge terms on the held-out images and their reconstructions.

        Every tracker is updated per example and every result returned, so Keras reports
        the trackers' cross-replica sums / counts: means over all replicas' images, however
        the batches split (an empty replica batch counts nothing).
        """
        images = data["image"] if isinstance(data, dict) else data

        def score():
            logits = self.classifier(images)
            # Counter: the images this replica has scored since the metrics were reset, so each
            # image gets its own noise and every `evaluate()` draws the same.
            scored = self.trackers["agreement"].count
            noise = self._noise(ops.shape(images)[0], _EVAL_STREAM, ops.convert_to_tensor(scored))
            reconstructions = self.generate(logits, noise)
            if hasattr(self.classifier, "logits"):   # conditioned on another layer
                matches = metrics.top1_matches(*self.classifier_logits(images, reconstructions))
            else:
                matches = metrics.top1_matches(logits, self.classifier(reconstructions))
            scores = self.discriminator(ops.concatenate([images, reconstructions], 0),
                                        ops.concatenate([logits, logits], 0), training=False)
            real, fake = ops.split(scores, 2)
            # Per-example terms whose means are the hinge losses of `losses`.
            for name, value in (("agreement", matches), ("d_real", real), ("d_fake", fake),
                                ("d_loss", ops.relu(1.0 - real) + ops.relu(1.0 + fake)),
                                ("g_loss", -fake)):
                self.trackers[name].update_state(value)
            return tf.constant(0)

        # An empty replica batch is skipped, not scored: it would add nothing, and with
        # oneDNN (TF's default on recent Intel CPUs) a convolution of an empty batch comes
        # back with its input's channel count, which breaks the layer after it.
        tf.cond(tf.shape(images)[0] > 0, score, lambda: tf.constant(0))
        return {name: t.result() for name, t in self.trackers.items()}

    # ---- standing statistics --------------------------------------------------------

    def accumulate_standing_stats(self, images, num_batches):
        """BigGAN's standing statistics: G_ema's batch-norm statistics measured on G_ema.

        Runs G_ema in training mode (batch statistics) on Φ(x) and fresh noise for
        `num_batches` batches, averages each batch-norm layer's per-batch means and
        variances (plain averages, not momentum), and stores them as that layer's moving
        statistics, which every inference-mode output uses (`call`, `generate`, `evaluate`,
        exports). Weights and spectral-norm vectors stay as they are.

        Order: train steps blend the online generator's statistics back in (`_update_ema`),
        so call this after training or after restoring a checkpoint, before evaluating or
        exporting. Under a distribution strategy each replica takes an equal slice of each
        batch and the statistics are synchronized across replicas, as in training.

        Args:
            images: an iterable (list, `tf.data` dataset or iterator) of image batches
                `[batch, R, R, 3]` in [-1, 1], or of dicts holding them under "image";
                training images, so that the statistics describe the logits G_ema serves.
            num_batches: how many batches to average; 0 leaves the statistics unchanged.
                Fewer are used if `images` runs out first.

        Returns:
            The number of batches used.

        Example:
            inverter.accumulate_standing_stats(train_dataset.as_numpy_iterator(), 16)
        """
        if (isinstance(num_batches, bool) or not isinstance(num_batches, numbers.Integral)
                or num_batches < 0):
            raise ValueError(f"num_batches must be an integer ≥ 0. "
                             f"Received: num_batches={num_batches!r}")
        if num_batches == 0:
            return 0
        strategy = tf.distribute.get_strategy()
        replicas = strategy.num_replicas_in_sync
        layers, sums, used = [], None, 0
        with BatchStatisticsRecorder() as recorder:

            def replica_statistics(batch, index):
                size = ops.shape(batch)[0] // replicas
                own = batch[size * _replica_id():size * (_replica_id() + 1)]
                recorder.clear()
                self.ema_generator(self.classifier(own),
                                   self._noise(size, _STANDING_STREAM, index), training=True)
                layers[:] = [layer for layer, _, _ in recorder.statistics]
                return [(mean, var) for _, mean, var in recorder.statistics]

            @tf.function(reduce_retracing=True)
            def batch_statistics(batch, index):
                per_replica = strategy.run(replica_statistics, args=(batch, index))
                # Synchronized batch statistics: every replica holds the same values.
                return tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], per_replica)

            for batch in images:
                batch = tf.convert_to_tensor(
                    batch["image"] if isinstance(batch, dict) else batch, tf.float32)
                self._check_standing_batch(batch, replicas)
                stats = batch_statistics(batch, tf.constant(used, tf.int64))
                stats = [(np.asarray(m, np.float64), np.asarray(v, np.float64))
                         for m, v in stats]
                sums = stats if sums is None else [
                    (sm + m, sv + v) for (sm, sv), (m, v) in zip(sums, stats)]
                used += 1
                if used == num_batches:
                    break
        if used == 0:
            raise ValueError("accumulate_standing_stats got no image batches. "
                             f"Received: images={images!r}")
        for layer, (mean_sum, var_sum) in zip(layers, sums):
            layer.moving_mean.assign((mean_sum / used).astype("float32"))
            layer.moving_var.assign((var_sum / used).astype("float32"))
        return used

    def _check_standing_batch(self, batch, replicas):
        r = self.resolution
        shape = tuple(batch.shape)
        if len(shape) != 4 or shape[1:] != (r, r, 3) or shape[0] < replicas \
                or shape[0] % replicas:
            raise ValueError(
                f"Standing statistics need image batches [batch, {r}, {r}, 3] with batch a "
                f"positive multiple of the {replicas} replica(s). Received: shape={shape}")

    def get_config(self):
        return {"d_steps": self.d_steps, "ema_decay": self.ema_decay,
                "ema_start": self.ema_start, "consistency_weight": self.consistency_weight,
                "consistency_start": self.consistency_start, "r1_weight": self.r1_weight,
                "diversity_weight": self.diversity_weight, "diversity_clip": self.diversity_clip,
                "pixel_weight": self.pixel_weight,
                "consistency_temperature": self.consistency_temperature, "seed": self.seed,
                "deterministic": self.deterministic, "feature_weight": self.feature_weight,
                "agreement_every": self.agreement_every}
