"""L-infinity adversarial examples (PGD, FGSM with random start) and robust accuracy.

Pure functions: a `logits_fn` maps images `[batch, height, width, 3]` in [0, 1] to logits
`[batch, num_classes]`; epsilons and step sizes are in the same [0, 1] pixel units.

Robust classifiers matter for the paper: their logits keep more of the image, so inverting them
gives sharper, more faithful reconstructions than inverting standard ones.

Example:

```python
adversarial = pgd_attack(model, images, labels, epsilon=8 / 255, steps=20)
```
"""

import keras
import tensorflow as tf
from keras import ops


def pgd_attack(logits_fn, images, labels, epsilon, steps, step_size=None, seed=None, random_start=True):
    """Projected gradient ascent on the cross-entropy within an L-infinity ball.

    Args:
        logits_fn: callable, images `[batch, h, w, 3]` in [0, 1] -> logits `[batch, classes]`.
        images: float32 `[batch, h, w, 3]` in [0, 1].
        labels: int `[batch]`, the true classes.
        epsilon: radius of the L-infinity ball, in [0, 1] pixel units.
        steps: number of gradient steps (PGD-20: 20; FGSM: 1).
        step_size: per-step change; default `epsilon / 4` (2/255 at 8/255, the usual PGD-20).
        seed: int or `keras.random.SeedGenerator` for the random start.
        random_start: start from a uniform point in the ball rather than the clean image.

    Returns:
        float32 `[batch, h, w, 3]` adversarial images in [0, 1], within `epsilon` of `images`.
    """
    if epsilon < 0 or steps < 0:
        raise ValueError(
            f"`epsilon` and `steps` must be non-negative. Received: epsilon={epsilon}, steps={steps}"
        )
    images = ops.cast(images, "float32")
    if epsilon == 0 or steps == 0:
        return images
    step_size = epsilon / 4 if step_size is None else step_size
    low, high = ops.maximum(images - epsilon, 0.0), ops.minimum(images + epsilon, 1.0)
    adversarial = images
    if random_start:
        noise = keras.random.uniform(ops.shape(images), -epsilon, epsilon, seed=seed)
        adversarial = ops.clip(images + noise, low, high)
    for _ in range(steps):
        gradient = _loss_gradient(logits_fn, adversarial, labels)
        # Sign of the gradient: the steepest ascent direction for an L-infinity budget.
        adversarial = ops.clip(adversarial + step_size * ops.sign(gradient), low, high)
    return ops.stop_gradient(adversarial)


def fgsm_rs_attack(logits_fn, images, labels, epsilon, seed=None):
    """FGSM with a random start (Wong et al. 2020, "Fast is better than free").

    One signed-gradient step of 1.25 * epsilon from a uniform random point in the ball: as
    cheap as FGSM, without its catastrophic overfitting, for adversarial training.
    """
    return pgd_attack(
        logits_fn, images, labels, epsilon, steps=1, step_size=1.25 * epsilon, seed=seed
    )


def _loss_gradient(logits_fn, images, labels):
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = ops.cast(logits_fn(images), "float32")
        loss = ops.sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    return tape.gradient(loss, images)


def accuracy(logits_fn, dataset, epsilon=0.0, steps=20, step_size=None, seed=0):
    """Clean and PGD accuracy of a classifier over a dataset.

    Args:
        logits_fn: callable, images in [0, 1] -> logits.
        dataset: iterable of `(images [batch, h, w, 3] float in [0, 1], labels [batch])`.
        epsilon: PGD radius; 0 skips the attack (robust accuracy is then the clean accuracy).
        steps: PGD steps.
        step_size: PGD step size (default `epsilon / 4`).
        seed: seed of the random starts, so evaluations are reproducible.

    Returns:
        Dict with `clean_accuracy`, `robust_accuracy` (floats in [0, 1]) and `examples`.
    """
    seed_generator = keras.random.SeedGenerator(seed)

    @tf.function(reduce_retracing=True)
    def correct(images, labels):
        clean = ops.argmax(logits_fn(images), axis=-1)
        adversarial = pgd_attack(logits_fn, images, labels, epsilon, steps, step_size, seed_generator)
        robust = ops.argmax(logits_fn(adversarial), axis=-1)
        labels = ops.cast(labels, clean.dtype)
        return ops.sum(ops.cast(clean == labels, "int32")), ops.sum(ops.cast(robust == labels, "int32"))

    totals = {"clean": 0, "robust": 0, "examples": 0}
    for images, labels in dataset:
        clean, robust = correct(ops.cast(images, "float32"), labels)
        totals["clean"] += int(clean)
        totals["robust"] += int(robust)
        totals["examples"] += int(ops.shape(labels)[0])
    if totals["examples"] == 0:
        raise ValueError(f"`dataset` is empty. Received: dataset={dataset}")
    return {
        "clean_accuracy": totals["clean"] / totals["examples"],
        "robust_accuracy": totals["robust"] / totals["examples"],
        "examples": totals["examples"],
    }
