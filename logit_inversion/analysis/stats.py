"""Noise tests for the analyses' numbers: bootstrap intervals, permutation tests, verdicts.

Every number that carries a claim is a mean over images, and a mean over a few hundred images
moves by chance. Three tools, one job each:

- `bootstrap_interval`: a percentile 95 % interval of a statistic, over images resampled with
  replacement (seeded, so the interval is the same on every run);
- `permutation_p_value`: how often a statistic computed on shuffled data reaches the observed
  one (the shuffle is the null hypothesis, e.g. "reconstructions paired with other originals
  of their class");
- `proportion_interval` / `difference_interval`: intervals of a rate and of the difference of
  two rates from counts alone, for tables that kept only summaries (Wilson score interval; the
  normal approximation for the difference); `interval_difference` does the same for two
  numbers known only by their intervals.

`verdict` turns an interval into words: "agrees" or "disagrees" only when the interval
excludes the null, "within noise" otherwise.

Example:

```python
low, high = bootstrap_interval(np.mean, errors, resamples=1000, seed=0)
verdict((low, high), null=0.0)          # "agrees" when low > 0, "within noise" when ≤ 0 ≤ high
p = permutation_p_value(observed, lambda rng: statistic(rng.permutation(pairs)))
```
"""

import math

import numpy as np

LEVEL = 0.95
RESAMPLES = 1000
WITHIN_NOISE = "within noise"


def _z(level):
    """The two-sided normal quantile of `level` (1.96 for 0.95)."""
    from statistics import NormalDist  # pylint: disable=import-outside-toplevel

    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _check_level(level):
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1). Received: level={level}")


def bootstrap_interval(statistic, *arrays, resamples=RESAMPLES, seed=0, level=LEVEL):
    """Percentile bootstrap interval of `statistic(*arrays)` over their rows.

    Args:
        statistic: callable taking the arrays (rows resampled together) and returning a float;
            NaN results (e.g. a ratio with a zero denominator) are left out of the quantiles.
        *arrays: arrays with the same first dimension n (one row per image).
        resamples: how many resamples of n rows, drawn with replacement.
        seed: seed of the resampling.
        level: coverage of the interval.

    Returns:
        `(low, high)` floats, or `(nan, nan)` when every resample gives NaN.
    """
    _check_level(level)
    if resamples < 1:
        raise ValueError(f"resamples must be positive. Received: resamples={resamples}")
    if not arrays:
        raise ValueError("bootstrap_interval needs at least one array. Received: no arrays")
    arrays = [np.asarray(a) for a in arrays]
    n = arrays[0].shape[0]
    if n < 1 or any(a.shape[0] != n for a in arrays):
        raise ValueError(f"Expected arrays with the same positive number of rows. Received: "
                         f"rows={[a.shape[0] for a in arrays]}")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for r in range(resamples):
        rows = rng.integers(0, n, n)
        values[r] = statistic(*(a[rows] for a in arrays))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def permutation_p_value(observed, null_statistic, permutations=RESAMPLES, seed=0,
                        alternative="greater"):
    """Permutation p-value of an observed statistic.

    Args:
        observed: the statistic on the data as measured.
        null_statistic: callable `rng → float`, the statistic of one draw from the null
            hypothesis (e.g. reconstructions shuffled among the originals of their class).
        permutations: draws from the null.
        seed: seed of the draws.
        alternative: "greater" (the claim is that `observed` is large), "less", or
            "two-sided" (distance from the null draws' mean).

    Returns:
        p = (1 + #{null draws at least as extreme}) / (1 + draws): never 0, since a finite
        number of draws cannot rule the null out entirely. NaN when `observed` is NaN.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be positive. Received: permutations={permutations}")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided'. Received: "
                         f"alternative={alternative}")
    rng = np.random.default_rng(seed)
    null = np.array([null_statistic(rng) for _ in range(permutations)], np.float64)
    null = null[np.isfinite(null)]
    if not math.isfinite(observed) or null.size == 0:
        return float("nan")
    if alternative == "greater":
        extreme = np.sum(null >= observed)
    elif alternative == "less":
        extreme = np.sum(null <= observed)
    else:
        centre = null.mean()
        extreme = np.sum(np.abs(null - centre) >= abs(observed - centre))
    return float((1 + extreme) / (1 + null.size))


def proportion_interval(successes, n, level=LEVEL):
    """Wilson score interval of a rate `successes / n`; `(nan, nan)` when n is 0."""
    _check_level(level)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"Expected 0 ≤ successes ≤ n. Received: successes={successes}, n={n}")
    if n == 0:
        return float("nan"), float("nan")
    z = _z(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def difference_interval(p1, n1, p2, n2, level=LEVEL):
    """Normal-approximation interval of `p2 − p1`, two rates measured on n1 and n2 images."""
    _check_level(level)
    if n1 < 1 or n2 < 1:
        raise ValueError(f"Both rates need at least one image. Received: n1={n1}, n2={n2}")
    for name, p in (("p1", p1), ("p2", p2)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a rate in [0, 1]. Received: {name}={p}")
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    d = p2 - p1
    z = _z(level)
    return d - z * se, d + z * se


def interval_difference(a, a_interval, b, b_interval, level=LEVEL):
    """Normal-approximation interval of `b − a`, two numbers measured on separate samples,
    each known only by its own interval at `level` (a summary keeps no per-image values).

    Each standard error is read back from its interval's width; the two add in quadrature,
    which overstates the spread when the samples share images (then the interval is
    conservative: it says "within noise" more often, never "agrees" more often).
    `(nan, nan)` when either interval is missing or undefined.
    """
    _check_level(level)
    bounds = [*a_interval, *b_interval]
    if any(x is None or not math.isfinite(x) for x in bounds) or a is None or b is None:
        return float("nan"), float("nan")
    z = _z(level)
    se = math.hypot((a_interval[1] - a_interval[0]) / (2 * z),
                    (b_interval[1] - b_interval[0]) / (2 * z))
    d = b - a
    return d - z * se, d + z * se


def excludes(interval, null=0.0):
    """+1 when the whole interval is above `null`, −1 when below, 0 when it holds it (or is
    undefined)."""
    low, high = interval
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return 0
    if low > null:
        return 1
    if high < null:
        return -1
    return 0


def verdict(interval, null=0.0, expected="above"):
    """A claim's verdict from the interval of its number.

    Args:
        interval: `(low, high)` of the measured number (or of a difference).
        null: the value that means "no effect" (0 for a difference, chance for a rate).
        expected: "above" when the claim says the number exceeds `null`, "below" otherwise.

    Returns:
        "agrees" when the interval lies wholly on the claimed side of `null`, "disagrees" when
        it lies wholly on the other side, "within noise" when it holds `null`.
    """
    if expected not in ("above", "below"):
        raise ValueError(f"expected must be 'above' or 'below'. Received: expected={expected}")
    side = excludes(interval, null)
    if side == 0:
        return WITHIN_NOISE
    return "agrees" if (side > 0) == (expected == "above") else "disagrees"


def format_interval(interval, digits=2):
    """`"[0.12, 0.34]"`, or `"[–]"` for an undefined interval."""
    low, high = interval
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "[–]"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"
