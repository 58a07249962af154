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

Cost: the sums behind MAE, Brier, the cohorts' uncertainty and the bins are kept as each
point enters and leaves, in exact integer fixed point (``_Q``), so they do not depend on the
order points came and went (a replica that evicted along the way and one restored from a
checkpoint agree exactly); Spearman sorts the window once per change (torch, integer rank
sums) and ``summary`` is cached until the next change. A read costs O(bins) between updates
and ~0.3 s per update at the largest window (1M points) instead of seconds per read.

A function of the applied log only, so every replica applying the same log computes the
same numbers; ``state``/``load_state`` carry the window through checkpoints.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from sweetspot_client.ranking import ranks, spearman

__all__ = ["BINS", "COHORTS", "CalibrationWindow", "fast_spearman", "ranks", "spearman"]

BINS = 10
COHORTS = ("all", "first_seen", "revisited")
_Q = 1 << 52
"""Fixed-point scale of the running sums: a value v in [0, 1] counts as round(v · _Q)."""


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


def _doubled_ranks(values: torch.Tensor) -> torch.Tensor:
    """2 × the 1-based average ranks (integers): [N] float64 -> [N] int64."""
    ordered, order = torch.sort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0)  # rank of each tie group's last member
    doubled = (2 * ends - counts + 1)[inverse]  # start + end of the group
    out = torch.empty_like(doubled)
    out[order] = doubled
    return out


def fast_spearman(x: list[float], y: list[float]) -> float | None:
    """``spearman`` for large windows: vectorised ranks and exact integer sums (so the result
    does not depend on summation order or thread count)."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs aligned lists, got {len(x)} and {len(y)} values")
    n = len(x)
    if n < 2:
        return None
    a = _doubled_ranks(torch.tensor(x, dtype=torch.float64))
    b = _doubled_ranks(torch.tensor(y, dtype=torch.float64))
    sa, sb = int(a.sum()), int(b.sum())
    cov = n * int((a * b).sum()) - sa * sb
    va = n * int((a * a).sum()) - sa * sa
    vb = n * int((b * b).sum()) - sb * sb
    if va == 0 or vb == 0:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(va * vb)))


def _fixed(v: float) -> int:
    return round(v * _Q)


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
        self.version = 0
        """The model version whose update last entered the window: what a read reports as
        ``model_version`` (the model's own counter runs ahead while an update is applied)."""
        self._points: deque[Point] = deque()
        self._reset_sums()

    def _reset_sums(self) -> None:
        self._counts = dict.fromkeys(COHORTS, 0)
        self._abs = dict.fromkeys(COHORTS, 0)  # Σ|p̂ − r̄| · _Q
        self._sd_counts = dict.fromkeys(COHORTS, 0)
        self._sd_sums = dict.fromkeys(COHORTS, 0)  # Σ sd · _Q
        self._squared = 0  # Σ(p̂ − r̄)² · _Q²
        self._bin_counts = [0] * BINS
        self._bin_predicted = [0] * BINS  # Σ p̂ · _Q
        self._bin_observed = [0] * BINS  # Σ r̄ · _Q
        self._cached: tuple[int, Summary] | None = None

    def __len__(self) -> int:
        return len(self._points)

    def add(
        self,
        predicted: list[float],
        observed: list[float],
        first_seen: list[bool | None],
        uncertainty: list[float] | list[None] | None = None,
        version: int | None = None,
    ) -> None:
        """One update's prompts, in request order (the oldest points fall out), made by model
        ``version``. Non-finite values (a diverged model, which fails its run) are skipped:
        they describe nothing."""
        sds = uncertainty if uncertainty is not None else [None] * len(predicted)
        for p, r, fresh, sd in zip(predicted, observed, first_seen, sds, strict=True):
            if math.isfinite(p) and math.isfinite(r):
                finite_sd = None if sd is None or not math.isfinite(sd) else float(sd)
                if len(self._points) == self.size:
                    self._count(self._points.popleft(), -1)
                point = Point(float(p), float(r), fresh, finite_sd)
                self._points.append(point)
                self._count(point, 1)
        if version is not None:
            self.version = version
        self.changes += 1

    def _count(self, q: Point, sign: int) -> None:
        """Add (sign 1) or remove (-1) one point's share of the running sums."""
        qp, qr = _fixed(q.predicted), _fixed(q.observed)
        error = abs(qp - qr)
        self._squared += sign * error * error
        cohorts = ["all"]
        if q.first_seen is not None:
            cohorts.append("first_seen" if q.first_seen else "revisited")
        for cohort in cohorts:
            self._counts[cohort] += sign
            self._abs[cohort] += sign * error
            if q.uncertainty is not None:
                self._sd_counts[cohort] += sign
                self._sd_sums[cohort] += sign * _fixed(q.uncertainty)
        i = bin_index(q.predicted)
        self._bin_counts[i] += sign
        self._bin_predicted[i] += sign * qp
        self._bin_observed[i] += sign * qr

    def summary(self) -> Summary:
        """The window's summary, computed once per change (see the module docstring)."""
        if self._cached is not None and self._cached[0] == self.changes:
            return self._cached[1]
        counts = dict(self._counts)

        def mean(total: int, count: int) -> float | None:
            return total / (count * _Q) if count else None

        summary = Summary(
            size=self.size,
            counts=counts,
            mae={name: mean(self._abs[name], counts[name]) for name in COHORTS},
            uncertainty={
                name: mean(self._sd_sums[name], self._sd_counts[name]) for name in COHORTS
            },
            brier=self._squared / (counts["all"] * _Q * _Q) if counts["all"] else None,
            spearman=fast_spearman(
                [q.predicted for q in self._points], [q.observed for q in self._points]
            ),
            bins=[
                Bin(
                    lower=i / BINS,
                    upper=(i + 1) / BINS,
                    count=self._bin_counts[i],
                    mean_predicted=mean(self._bin_predicted[i], self._bin_counts[i]),
                    mean_observed=mean(self._bin_observed[i], self._bin_counts[i]),
                )
                for i in range(BINS)
            ],
        )
        self._cached = (self.changes, summary)
        return summary

    def state(self) -> dict[str, Any]:
        """Plain lists (``torch.load(weights_only=True)`` reads them back) for checkpoints."""
        return {
            "predicted": [q.predicted for q in self._points],
            "observed": [q.observed for q in self._points],
            "first_seen": [q.first_seen for q in self._points],
            "uncertainty": [q.uncertainty for q in self._points],
        }

    def load_state(self, state: dict[str, Any] | None, version: int = 0) -> None:
        """Replace the window with ``state()``'s points (the newest ``size`` of them), saved
        with model ``version``."""
        self._points.clear()
        self._reset_sums()
        self.version = version
        self.changes += 1
        if state is not None:
            self.add(
                state["predicted"],
                state["observed"],
                state["first_seen"],
                state.get("uncertainty"),  # absent in checkpoints of earlier releases
            )
