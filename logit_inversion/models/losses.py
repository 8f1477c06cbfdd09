"""GAN and auxiliary losses as pure functions: tensors in, scalar tensor out (TF-GAN style).

Each returns the mean over the *local* batch; the train step divides by the number of
replicas so that gradients summed across replicas average over the global batch.
"""

from keras import ops


def discriminator_hinge_loss(real_scores, fake_scores):
    """E[relu(1 − D(x, z))] + E[relu(1 + D(G(z, ε), z))]. Scores `[batch]` → scalar."""
    real = ops.mean(ops.relu(1.0 - ops.cast(real_scores, "float32")))
    fake = ops.mean(ops.relu(1.0 + ops.cast(fake_scores, "float32")))
    return real + fake


def generator_hinge_loss(fake_scores):
    """−E[D(G(z, ε), z)]. Scores `[batch]` → scalar."""
    return -ops.mean(ops.cast(fake_scores, "float32"))


def diversity_reward(first, second, first_noise, second_noise, clip):
    """Mean over pairs of min(mean |x₁ − x₂| / mean |ε₁ − ε₂|, clip): how far two draws
    G(z, ε₁), G(z, ε₂) of the same logits differ per unit of noise change (Yang et al.'s
    diversity-sensitive term). Images `[n, ...]`, noise `[n, d]` → scalar; larger = more
    diverse. Pairs past `clip` add no gradient."""
    axes = list(range(1, len(first.shape)))
    pixels = ops.mean(ops.abs(ops.cast(first, "float32") - ops.cast(second, "float32")), axes)
    noise = ops.mean(ops.abs(first_noise - second_noise), -1)
    return ops.mean(ops.minimum(pixels / (noise + 1e-8), clip))


def logit_consistency_loss(reconstruction_logits, logits, temperature=1.0):
    """KL(softmax(z/T) ‖ softmax(Φ(G(z, ε))/T)) · T²: the classifier should see the
    reconstruction as it saw the original. Logits `[batch, K]` → scalar.

    KL rather than ‖·‖² because it cares about the ranking the classifier expresses, not
    about the absolute logit scale, which Φ is free to inflate off the data manifold.
    """
    t = temperature
    target = ops.softmax(ops.cast(logits, "float32") / t, axis=-1)
    log_pred = ops.log_softmax(ops.cast(reconstruction_logits, "float32") / t, axis=-1)
    log_target = ops.log(target + 1e-12)
    return ops.mean(ops.sum(target * (log_target - log_pred), axis=-1)) * t * t


def pixel_loss(reconstructions, images):
    """Mean absolute pixel error, `[batch, h, w, 3]` both in [-1, 1] → scalar."""
    diff = ops.cast(reconstructions, "float32") - ops.cast(images, "float32")
    return ops.mean(ops.abs(diff))
