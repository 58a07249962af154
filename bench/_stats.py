"""Small statistics shared by the benchmarks and the report (no heavy imports)."""

from __future__ import annotations

import statistics

# Two-sided 95 % quantiles of Student's t by degrees of freedom.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}
T_975_MORE = {9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131}
# One-sided 80 % quantiles of Student's t (for power: the t_{1-β} term), by degrees of freedom.
T_80 = {1: 1.376, 2: 1.061, 3: 0.978, 4: 0.941, 5: 0.920, 6: 0.906, 7: 0.896, 8: 0.889}
T_80 |= {9: 0.883, 10: 0.879, 11: 0.876, 12: 0.873, 13: 0.870, 14: 0.868, 15: 0.866}


def mean_ci95(values: list[float]) -> tuple[float | None, tuple[float, float] | None]:
    """Mean and 95 % t-interval of ``values`` (the interval needs 2 to 16 of them)."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    quantiles = T_975 | T_975_MORE
    if len(values) - 1 not in quantiles:
        return mean, None
    half = quantiles[len(values) - 1] * statistics.stdev(values) / len(values) ** 0.5
    return mean, (mean - half, mean + half)


def paired(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """``a[seed] - b[seed]`` for every seed both have, in seed order."""
    return [a[seed] - b[seed] for seed in sorted(a.keys() & b.keys())]


def iqm(values: list[float]) -> float | None:
    """Interquartile mean (rliable): the mean of the middle 50 % (sorted, a quarter cut from
    each end, at least one value kept)."""
    if not values:
        return None
    ordered = sorted(values)
    cut = len(ordered) // 4
    return statistics.fmean(ordered[cut : len(ordered) - cut] or ordered)


def bootstrap_ci95(
    values: list[float], *, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap 95 % interval of the mean (seeded, so reports are stable)."""
    import random

    if len(values) < 2:
        return None
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def probability_of_improvement(a: list[float], b: list[float]) -> float | None:
    """P(X > Y) for X from ``a`` and Y from ``b`` over all pairs, ties counting 1/2
    (rliable's probability of improvement, per seed)."""
    if not a or not b:
        return None
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))


def minimum_detectable(diffs: list[float]) -> float | None:
    """The smallest mean paired difference a two-sided 5 % t-test on ``len(diffs)`` pairs
    detects with 80 % power, at the spread these pairs show: (t_.975 + t_.80) · sd / √n."""
    n = len(diffs)
    quantiles = T_975 | T_975_MORE
    if n - 1 not in quantiles or n - 1 not in T_80:
        return None
    return (quantiles[n - 1] + T_80[n - 1]) * statistics.stdev(diffs) / n**0.5


def pairs_needed(diffs: list[float], effect: float) -> int | None:
    """Paired seeds a design needs to detect ``effect`` with 80 % power at ``diffs``' spread:
    the smallest n with (t_.975 + t_.80) · sd / √n ≤ effect, by Student's t up to 16 pairs
    and the normal approximation ((1.96 + 0.84) · sd / effect)² beyond."""
    if len(diffs) < 2 or effect <= 0:
        return None
    sd = statistics.stdev(diffs)
    quantiles = T_975 | T_975_MORE
    for n in range(2, 17):
        if (quantiles[n - 1] + T_80[n - 1]) * sd / n**0.5 <= effect:
            return n
    return max(17, round(((1.96 + 0.8416) * sd / effect) ** 2 + 0.5))
