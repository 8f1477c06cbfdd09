"""Optimization-based inversion (Mahendran & Vedaldi, "Understanding deep image
representations by inverting them", CVPR 2015), batched.

Starting from noise, each image x of a batch is optimised with Adam to minimise

    ‖Φ(x) − z‖² / ‖z‖²  +  λ_TV · TV(x)  +  λ_range · mean(relu(|x| − 1)²)

where z is the target logit vector (the normalisation by ‖z‖² is M&V's; it makes λ_TV mean the
same for every image), TV(x) = mean over pixels of (Δx² + Δy²)^(β/2) is their total-variation
prior (β = 2 here), and the range term is their bounded-range prior, softened. The result is
clipped to [-1, 1]. Every image is optimised independently; batching only shares the work.

Example:
    >>> inverter = OptimizationInverter(classifier, steps=200)
    >>> images = inverter.invert(logits, seed=0)     # [batch, R, R, 3] in [-1, 1]
"""

import time

import keras
import tensorflow as tf

PREFIX = "optimize"
DEFAULTS = {"steps": 200, "lr": 0.05, "tv": 0.05, "range": 1.0, "init": 0.1, "beta": 2.0}


def total_variation(images, beta=2.0):
    """Mean over pixels of (Δx² + Δy²)^(β/2), `[batch, h, w, c]` → `[batch]`."""
    dx = images[:, :-1, 1:, :] - images[:, :-1, :-1, :]
    dy = images[:, 1:, :-1, :] - images[:, :-1, :-1, :]
    squared = dx * dx + dy * dy
    per_pixel = squared if beta == 2.0 else tf.pow(squared + 1e-8, beta / 2.0)
    return tf.reduce_mean(per_pixel, axis=(1, 2, 3))


def range_penalty(images):
    """Mean of relu(|x| − 1)² over pixels, `[batch, h, w, c]` → `[batch]`: 0 inside [-1, 1]."""
    return tf.reduce_mean(tf.square(tf.nn.relu(tf.abs(images) - 1.0)), axis=(1, 2, 3))


def parse_spec(spec):
    """`"optimize:steps=1000,tv=0.1"` → `{"steps": 1000, "tv": 0.1, ...defaults}`.

    Keys: steps (Adam steps), lr, tv (λ_TV), range (λ_range), init (std of the starting
    noise), beta (TV exponent).
    """
    head, _, rest = spec.partition(":")
    if head != PREFIX:
        raise ValueError(f"An optimization spec starts with '{PREFIX}'. Received: spec={spec!r}")
    options = dict(DEFAULTS)
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            raise ValueError(f"Expected key=value with key in {sorted(DEFAULTS)}. "
                             f"Received: {item!r} in spec={spec!r}")
        try:
            options[key] = type(DEFAULTS[key])(float(value))
        except ValueError:
            raise ValueError(f"Expected a number for {key}. Received: {key}={value!r}") from None
    if options["steps"] < 1 or options["lr"] <= 0:
        raise ValueError(f"steps must be ≥ 1 and lr > 0. Received: steps={options['steps']}, "
                         f"lr={options['lr']}")
    return options


class OptimizationInverter:
    """Inverts logits by optimising images against a frozen classifier.

    Args:
        classifier: a `FrozenClassifier` (images in [-1, 1] → logits `[batch, K]`).
        resolution: side of the optimised images (default: the classifier's input size).
        steps, lr, tv, range, init, beta: see the module docstring and `parse_spec`.
    """

    def __init__(self, classifier, resolution=None, steps=200, lr=0.05, tv=0.05,
                 range=1.0, init=0.1, beta=2.0):  # noqa: A002  (`range` as in the spec)
        self.classifier = classifier
        self.resolution = resolution or classifier.spec.input_size
        self.steps, self.lr, self.tv, self.range, self.init, self.beta = (
            int(steps), lr, tv, range, init, beta)
        self.seconds_per_step = float("nan")

    @classmethod
    def from_spec(cls, classifier, spec, resolution=None):
        return cls(classifier, resolution, **parse_spec(spec))

    def losses(self, images, logits):
        """Per-image objective `[batch]` and its logit-matching part `[batch]`."""
        error = tf.reduce_sum(tf.square(self.classifier(images) - logits), -1)
        error = error / (tf.reduce_sum(tf.square(logits), -1) + 1e-12)
        total = error + self.tv * total_variation(images, self.beta)
        if self.range:
            total += self.range * range_penalty(images)
        return total, error

    def invert(self, logits, seed=0, record_steps=(), progress=None):
        """Images whose logits match `logits`.

        Args:
            logits: float32 `[batch, K]`.
            seed: seed of the starting noise.
            record_steps: step counts at which to keep a copy of the (clipped) images.
            progress: optional `callable(step, mean_logit_error)`, called every 10 % of steps.

        Returns:
            `[batch, R, R, 3]` in [-1, 1]; with `record_steps`, also a dict step → images.
        """
        logits = tf.convert_to_tensor(logits, tf.float32)
        shape = (int(logits.shape[0]), self.resolution, self.resolution, 3)
        images = tf.Variable(self.init * tf.random.stateless_normal(shape, (seed, 17)))
        optimizer = keras.optimizers.Adam(self.lr)
        optimizer.build([images])

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                total, error = self.losses(images, logits)
                loss = tf.reduce_sum(total)
            optimizer.apply_gradients([(tape.gradient(loss, images), images)])
            return tf.reduce_mean(error)

        recorded = {}
        wanted = set(int(s) for s in record_steps)
        every = max(self.steps // 10, 1)
        for i in range(1, self.steps + 1):
            error = step()
            if i == 1:
                float(error)   # the first call traces; time the rest
                start = time.perf_counter()
            if i in wanted:
                recorded[i] = tf.clip_by_value(images, -1.0, 1.0)
            if progress is not None and (i % every == 0 or i == self.steps):
                progress(i, float(error))
        result = tf.clip_by_value(images, -1.0, 1.0)
        float(error)
        # Seconds per step for the whole batch, tracing excluded (nan for a single step).
        self.seconds_per_step = ((time.perf_counter() - start) / (self.steps - 1)
                                 if self.steps > 1 else float("nan"))
        return (result, recorded) if record_steps else result

