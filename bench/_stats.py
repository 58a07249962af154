"""Small statistics shared by the benchmarks and the report (no heavy imports)."""

from __future__ import annotations

import statistics

# Two-sided 95 % quantiles of Student's t by degrees of freedom.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}


def mean_ci95(values: list[float]) -> tuple[float | None, tuple[float, float] | None]:
    """Mean and 95 % t-interval of ``values`` (the interval needs 2 to 9 of them)."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if not 2 <= len(values) <= len(T_975) + 1:
        return mean, None
    half = T_975[len(values) - 1] * statistics.stdev(values) / len(values) ** 0.5
    return mean, (mean - half, mean + half)


def paired(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """``a[seed] - b[seed]`` for every seed both have, in seed order."""
    return [a[seed] - b[seed] for seed in sorted(a.keys() & b.keys())]
