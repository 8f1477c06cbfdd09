"""Evaluation metrics as pure functions (tensors in, tensors out)."""

from keras import ops


def top1_matches(logits_a, logits_b):
    """1.0 where a row's arg-max class is the same, else 0.0. `[batch, K]` ×2 → `[batch]`.

    Per example, so that sums and counts aggregate exactly across batches and replicas.
    """
    same = ops.equal(ops.argmax(logits_a, axis=-1), ops.argmax(logits_b, axis=-1))
    return ops.cast(same, "float32")


def top1_agreement(logits_a, logits_b):
    """Fraction of rows whose arg-max class is the same. `[batch, K]` ×2 → scalar float32.

    With `logits_a = Φ(x)` and `logits_b = Φ(G(Φ(x), ε))` this is the paper's measure of how
    much class information the inverter recovers.
    """
    return ops.mean(top1_matches(logits_a, logits_b))


def logit_cosine(logits_a, logits_b):
    """Mean cosine similarity between logit vectors: agreement beyond the top-1 class."""
    a = ops.cast(logits_a, "float32")
    b = ops.cast(logits_b, "float32")
    num = ops.sum(a * b, axis=-1)
    den = ops.sqrt(ops.sum(a * a, axis=-1) * ops.sum(b * b, axis=-1)) + 1e-12
    return ops.mean(num / den)
