"""Per-run progressive-validation calibration over a sliding window of reported prompts.

Every prompt of an applied update adds one point (p̂, r̄, first_seen): p̂ is the value
model's prediction *before* that update's first optimiser step (``UpdateStats.predictions``,
so no extra forward pass), r̄ the mean of the rewards reported for it in that update, and
``first_seen`` whether the run's per-prompt statistics had count 0 before the update (the
store decides that in the atomic append, see ``store.LogEntry.first_seen``; ``None`` for
log entries written before it did). Only the last ``size`` points are kept.

Over the window:

- ``mae``: mean |p̂ − r̄|, also per cohort: ``first_seen`` prompts (the model never saw a
  reward for them: the honest generalisation error) and ``revisited`` ones (rewards for
  them were reported before, so the model may have been trained on them);
- ``brier``: mean (p̂ − r̄)². Because r̄ is a mean of n sampled rewards, not one 0/1
  outcome, this is the squared error against the *empirical* success rate; for binary
  rewards its expectation is (p̂ − p)² + p(1 − p)/n, so even a perfect model scores above
  0 when n is small. (The per-sample Brier score would add the within-prompt reward
  variance on top.)
- ``spearman``: Spearman's rank correlation between p̂ and r̄ (average ranks for ties), the
  quantity prompt selection depends on; ``None`` with fewer than 2 points or when either
  side is constant;
- ``uncertainty``: mean predicted standard deviation of p̂ per cohort (``None`` for points
  whose model gave none): set against ``mae``, it says whether the model knows how much it
  does not know (first-seen prompts should carry more than revisited ones);
- ``bins``: ``BINS`` equal-width bins of p̂ on [0, 1] (the last includes 1.0), each with its
  count, mean p̂ and mean r̄: the reliability diagram.

Pure Python and a function of the applied log only, so every replica applying the same log
computes the same numbers; ``state``/``load_state`` carry the window through checkpoints.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

BINS = 10
COHORTS = ("all", "first_seen", "revisited")


@dataclass(frozen=True)
class Point:
    predicted: float
    observed: float
    first_seen: bool | None
    uncertainty: float | None = None


@dataclass(frozen=True)
class Bin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    mean_observed: float | None


@dataclass(frozen=True)
class Summary:
    """What ``CalibrationWindow.summary`` reports; ``None`` where a value is undefined."""

    size: int
    counts: dict[str, int]
    """Points per cohort (``COHORTS``); ``all`` also counts points of unknown cohort."""
    mae: dict[str, float | None]
    uncertainty: dict[str, float | None]
    """Mean predicted sd per cohort, over points that carry one."""
    brier: float | None
    spearman: float | None
    bins: list[Bin]


def _ratio(total: float, count: int) -> float | None:
    return total / count if count else None


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


def bin_index(p: float) -> int:
    return min(BINS - 1, max(0, int(p * BINS)))


class CalibrationWindow:
    """The last ``size`` reported prompts of one run (see the module docstring)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the calibration window needs at least 1 prompt, got {size}")
        self.size = size
        self.changes = 0
        """Bumped by every ``add`` and ``load_state``: whether a summary may have changed."""
        self._points: deque[Point] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._points)

    def add(
        self,
        predicted: list[float],
        observed: list[float],
        first_seen: list[bool | None],
        uncertainty: list[float] | list[None] | None = None,
    ) -> None:
        """One update's prompts, in request order (the oldest points fall out). Non-finite
        values (a diverged model, which fails its run) are skipped: they describe nothing."""
        sds = uncertainty if uncertainty is not None else [None] * len(predicted)
        for p, r, fresh, sd in zip(predicted, observed, first_seen, sds, strict=True):
            if math.isfinite(p) and math.isfinite(r):
                finite_sd = None if sd is None or not math.isfinite(sd) else float(sd)
                self._points.append(Point(float(p), float(r), fresh, finite_sd))
        self.changes += 1

    def summary(self) -> Summary:
        """One pass over the window plus a sort for Spearman (~7 ms for 2048 points here)."""
        counts = dict.fromkeys(COHORTS, 0)
        abs_sums = dict.fromkeys(COHORTS, 0.0)
        sd_counts = dict.fromkeys(COHORTS, 0)
        sd_sums = dict.fromkeys(COHORTS, 0.0)
        squared = 0.0
        bin_counts = [0] * BINS
        bin_predicted = [0.0] * BINS
        bin_observed = [0.0] * BINS
        # Non-finite points (in a window saved by a release that kept them) describe nothing.
        points = [q for q in self._points if math.isfinite(q.predicted + q.observed)]
        for q in points:
            error = abs(q.predicted - q.observed)
            squared += error * error
            cohorts = ["all"]
            if q.first_seen is not None:
                cohorts.append("first_seen" if q.first_seen else "revisited")
            for cohort in cohorts:
                counts[cohort] += 1
                abs_sums[cohort] += error
                if q.uncertainty is not None:
                    sd_counts[cohort] += 1
                    sd_sums[cohort] += q.uncertainty
            i = bin_index(q.predicted)
            bin_counts[i] += 1
            bin_predicted[i] += q.predicted
            bin_observed[i] += q.observed
        return Summary(
            size=self.size,
            counts=counts,
            mae={name: _ratio(abs_sums[name], counts[name]) for name in COHORTS},
            uncertainty={name: _ratio(sd_sums[name], sd_counts[name]) for name in COHORTS},
            brier=_ratio(squared, counts["all"]),
            spearman=spearman([q.predicted for q in points], [q.observed for q in points]),
            bins=[
                Bin(
                    lower=i / BINS,
                    upper=(i + 1) / BINS,
                    count=bin_counts[i],
                    mean_predicted=_ratio(bin_predicted[i], bin_counts[i]),
                    mean_observed=_ratio(bin_observed[i], bin_counts[i]),
                )
                for i in range(BINS)
            ],
        )

    def state(self) -> dict[str, Any]:
        """Plain lists (``torch.load(weights_only=True)`` reads them back) for checkpoints."""
        return {
            "predicted": [q.predicted for q in self._points],
            "observed": [q.observed for q in self._points],
            "first_seen": [q.first_seen for q in self._points],
            "uncertainty": [q.uncertainty for q in self._points],
        }

    def load_state(self, state: dict[str, Any] | None) -> None:
        """Replace the window with ``state()``'s points (the newest ``size`` of them)."""
        self._points.clear()
        self.changes += 1
        if state is not None:
            self.add(
                state["predicted"],
                state["observed"],
                state["first_seen"],
                state.get("uncertainty"),  # absent in checkpoints of earlier releases
            )
