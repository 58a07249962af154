"""Spearman's rank correlation in pure Python: one definition for the service's calibration,
the benchmarks and the ``sweetspot`` CLI (the client has no numpy or torch)."""

from __future__ import annotations

import math


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank: [0.2, 0.1, 0.2] -> [2.5, 1.0, 2.5]."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            out[i] = (start + end) / 2 + 1
        start = end + 1
    return out


def spearman(x: list[float], y: list[float]) -> float | None:
    """Pearson correlation of the ranks; None when undefined (n < 2 or a constant side)."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs aligned lists, got {len(x)} and {len(y)} values")
    if len(x) < 2:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = math.fsum(rx) / len(rx), math.fsum(ry) / len(ry)
    cov = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = math.fsum((a - mx) ** 2 for a in rx)
    vy = math.fsum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(vx * vy)))
