"""Evaluation metrics as pure functions (tensors in, tensors out)."""

from keras import ops


def top1_agreement(logits_a, logits_b):
    """Fraction of rows whose arg-max class is the same. `[batch, K]` ×2 → scalar float32.

    With `logits_a = Φ(x)` and `logits_b = Φ(G(Φ(x), ε))` this is the paper's measure of how
    much class information the inverter recovers.
    """
    same = ops.equal(ops.argmax(logits_a, axis=-1), ops.argmax(logits_b, axis=-1))
    return ops.mean(ops.cast(same, "float32"))


def logit_cosine(logits_a, logits_b):
    """Mean cosine similarity between logit vectors: agreement beyond the top-1 class."""
    a = ops.cast(logits_a, "float32")
    b = ops.cast(logits_b, "float32")
    num = ops.sum(a * b, axis=-1)
    den = ops.sqrt(ops.sum(a * a, axis=-1) * ops.sum(b * b, axis=-1)) + 1e-12
    return ops.mean(num / den)
