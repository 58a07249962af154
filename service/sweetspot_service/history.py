"""Each prompt's own reward history, and the posterior that blends it with the head's p̂.

A prompt the run has reported is no longer only its text: it came back s of n. The posterior
treats the value model's p̂ as a Beta prior worth ``c`` pseudo-observations and adds the
prompt's own decayed successes and failures:

    a = c_eff·p̂ + s,   b = c_eff·(1 − p̂) + (n − s),   p_post = a / (a + b),
    sd = sqrt(p_post·(1 − p_post) / (a + b + 1))          (the Beta's standard deviation)

with n = Σ n_j γ^(V − v_j) and s = Σ n_j y_j γ^(V − v_j) over the prompt's reports (γ as in
``ridge.py``: the policy moves, old outcomes count less) and c_eff = c / max(1, novelty): a
prior for a prompt unlike anything observed (``RidgeHead.novelty`` ≫ 1) is worth fewer
pseudo-observations, so its sd is wide until the prompt is observed.

How much the prior is worth depends on where it points. Every first-seen prompt's report
measures the prior's error there: with ȳ the mean of n ≥ 2 rewards,
(ȳ − p̂)² − ȳ(1 − ȳ)/(n − 1) is an unbiased estimate of (p − p̂)² (the binomial noise
removed). Averaged (decayed) within each of ``EB_BINS`` bins of p̂ it gives the prior's
error variance τ² in that neighbourhood, and the Beta prior of that variance has
c = p̂(1 − p̂)/τ² − 1 pseudo-observations (``empirical_counts``): where the text says little
(inside one benchmark of real problems) the prompt's own rewards dominate, where it says
much the prior does. ``c`` is then chosen by the run's own progressive validation on
revisited prompts (each revisited prompt is scored with every candidate before its new
rewards are added), as the ridge chooses its α; the candidates are a fixed grid and this
empirical, per-bin count, which also serves before any prompt has come back
(``bench/value_model/real_problems.py`` revisit: within-benchmark Spearman and MAE of the posterior
against the raw draws and text-free priors).

Under policy lag (reports that carry policy versions, see ARCHITECTURE.md "Policy versions
and lag"): v_j is the version that generated report j and V the version the score is aimed
at, ``target(policy_version)``: the selection's version plus the lag the run has observed
(a decayed mean of generation version − selected version over its reports), or without a
selection version the newest version reported plus that lag. As V − v_j grows, n and s
shrink together: the posterior mean moves toward the prior and its sd widens. Without
versions V is the count of updates and v_j the update that reported, as before.

Bounded: the ``capacity`` most recently reported prompts are kept (least recently reported
forgotten first), so memory does not grow with the dataset. A function of the update
sequence, like the head: replicas and restarts agree.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor

from sweetspot_service.ridge import decay_factor

PSEUDO_COUNTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""The fixed candidates; the last candidate (index ``len(PSEUDO_COUNTS)``) is the empirical
per-bin count."""
EMPIRICAL = len(PSEUDO_COUNTS)
EB_BINS = 5
"""Neighbourhoods of the prior: equal-width bins of p̂ on [0, 1]."""
EB_MIN_WEIGHT = 16.0
"""Decayed first-seen reports a bin needs before its own τ² is used (else all bins' pooled)."""
EB_COUNT_RANGE = (0.5, 256.0)
_DEFAULT_C = PSEUDO_COUNTS.index(8.0)
_F64 = torch.float64


class PromptHistory:
    def __init__(self, *, capacity: int, half_life: float) -> None:
        self.capacity = capacity
        self.gamma = decay_factor(half_life)
        self.version = 0.0
        """The clock: updates counted, or the newest policy version reported."""
        self._items: OrderedDict[str, tuple[float, float, float]] = OrderedDict()
        """prompt hash -> (decayed reward count, decayed reward sum, version of both)."""
        self._lag = torch.zeros(2, dtype=_F64)
        """Decayed (weight, sum) of generation version − selected version over groups."""
        self._errors = torch.zeros(len(PSEUDO_COUNTS) + 1, dtype=_F64)
        """Decayed progressive squared error of each candidate c (the grid, then empirical)."""
        self._eb = torch.zeros(2, EB_BINS, dtype=_F64)
        """Per p̂ bin: the decayed count of first-seen reports (each counts once, whatever its n)
        and the decayed sum of their τ̂²."""

    @property
    def _choice(self) -> int:
        errors = self._errors.tolist()
        if any(errors):
            return min(range(len(errors)), key=errors.__getitem__)
        return EMPIRICAL if self._eb_ready else _DEFAULT_C

    @property
    def _eb_ready(self) -> bool:
        return float(self._eb[0].sum()) >= EB_MIN_WEIGHT

    @property
    def pseudo_count(self) -> float:
        """The fixed c served, or NaN when the empirical per-bin count is served."""
        choice = self._choice
        return math.nan if choice == EMPIRICAL else PSEUDO_COUNTS[choice]

    def empirical_counts(self, prior: Tensor) -> Tensor:
        """[N] p̂ -> [N] c = p̂(1 − p̂)/τ² − 1 with τ² the prior's error variance in p̂'s bin
        (pooled over bins while a bin has under ``EB_MIN_WEIGHT`` reports), clamped to
        ``EB_COUNT_RANGE``; the default c while nothing has been measured."""
        p = prior.to(_F64).clamp(0.0, 1.0)
        weight, total = self._eb[0], self._eb[1]
        if float(weight.sum()) <= 0:
            return torch.full_like(p, PSEUDO_COUNTS[_DEFAULT_C])
        pooled = float(total.sum() / weight.sum())
        local = torch.where(weight >= EB_MIN_WEIGHT, total / weight.clamp(min=1e-12), pooled)
        tau2 = local[_bins(p)].clamp(min=1e-4)
        spread = (p * (1 - p)).clamp(min=0.01)
        lo, hi = EB_COUNT_RANGE
        return (spread / tau2 - 1.0).clamp(lo, hi)

    def served_counts(self, prior: Tensor) -> Tensor:
        """[N] p̂ -> [N] the pseudo-count each prompt's prior is served with (before novelty)."""
        c = self._count(self._choice, prior)
        return c if isinstance(c, Tensor) else torch.full_like(prior.to(_F64), c)

    def _count(self, choice: int, prior: Tensor) -> Tensor | float:
        return self.empirical_counts(prior) if choice == EMPIRICAL else PSEUDO_COUNTS[choice]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def lag(self) -> float:
        """The run's running estimate of generation version − selected version (0: none)."""
        weight, total = self._lag.tolist()
        return total / weight if weight > 0 else 0.0

    def target(self, policy_version: float | None = None) -> float:
        """The version scores are aimed at: ``policy_version`` (else the clock) plus the lag."""
        base = self.version if policy_version is None else float(policy_version)
        lag = self.lag
        return base + lag if lag else base

    def aimed(self, versions: Tensor | None) -> Tensor | None:
        """[B] the version each report's progressive-validation posterior is aimed at: its
        generation version, but never past the clock before it (what could have been
        predicted then; a synchronous trainer's report, one version ahead, is scored at the
        clock, as without versions). None: the clock."""
        return None if versions is None else versions.to(_F64).clamp(max=self.version)

    def counts(self, hashes: list[str], at: Tensor | float | None = None) -> tuple[Tensor, Tensor]:
        """Decayed (reward count n, reward sum s) per prompt, [N] each, aged to version ``at``
        (a number or one per prompt; default the clock), never by a negative gap."""
        n = torch.zeros(len(hashes), dtype=_F64)
        s = torch.zeros(len(hashes), dtype=_F64)
        at = self.version if at is None else at
        for i, h in enumerate(hashes):
            if (item := self._items.get(h)) is not None:
                when = float(at[i]) if isinstance(at, Tensor) else at
                factor = self.gamma ** max(0.0, when - item[2])
                n[i], s[i] = item[0] * factor, item[1] * factor
        return n, s

    def posterior(
        self,
        prior: Tensor,
        novelty: Tensor | None,
        hashes: list[str],
        *,
        pseudo_count: float | None = None,
        at: Tensor | float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Posterior mean and sd per prompt ([N] each) from the prior p̂ [N], aimed at
        version ``at`` (default: the clock)."""
        n, s = self.counts(hashes, at)
        c = pseudo_count or self._count(self._choice, prior)
        return beta_posterior(prior.to(_F64), n, s, self._effective(novelty, c))

    def prior_sd(self, prior: Tensor, novelty: Tensor | None) -> Tensor:
        """The sd of the prior alone, as for a prompt with no reward of its own: [N]."""
        zero = torch.zeros_like(prior, dtype=_F64)
        c = self._count(self._choice, prior)
        return beta_posterior(prior.to(_F64), zero, zero, self._effective(novelty, c))[1]

    def observe(
        self,
        hashes: list[str],
        targets: Tensor,
        counts: Tensor,
        prior: Tensor,
        novelty: Tensor | None,
        versions: Tensor | None = None,
        selected: Tensor | None = None,
    ) -> None:
        """Score revisited prompts with every c (progressive validation), then add the batch.

        ``targets`` [B] mean rewards, ``counts`` [B] rewards behind them, ``prior`` [B] the
        head's p̂ before this update. ``versions`` [B]: the policy version that generated each
        (None: one version after the clock); ``selected`` [B]: the version each was selected
        for (NaN: not known), whose gap to ``versions`` feeds the lag estimate.
        """
        y, w = targets.to(_F64), counts.to(_F64)
        prior = prior.to(_F64)
        n, s = self.counts(hashes, self.aimed(versions))
        seen = n > 0
        err = torch.zeros_like(self._errors)
        if bool(seen.any()):
            err = torch.stack(
                [
                    (
                        (
                            beta_posterior(
                                prior, n, s, self._effective(novelty, self._count(k, prior))
                            )[0]
                            - y
                        )
                        ** 2
                        * w
                    )[seen].sum()
                    for k in range(len(PSEUDO_COUNTS) + 1)
                ]
            )
        clock = self.version + 1 if versions is None else max(self.version, float(versions.max()))
        g = self.gamma ** (clock - self.version)
        self._errors = self._errors * g + err
        self._learn_prior_error(prior, y, w, ~seen, g)
        self._learn_lag(versions, selected, g)
        self.version = clock
        made = [clock] * len(hashes) if versions is None else versions.tolist()
        for h, mean, count, v in zip(hashes, y.tolist(), w.tolist(), made, strict=True):
            old_n, old_s, old_v = self._items.pop(h, (0.0, 0.0, v))
            ref = max(old_v, v)  # both parts aged to the newer of their versions
            old, new = self.gamma ** (ref - old_v), self.gamma ** (ref - v)
            self._items[h] = (old_n * old + count * new, old_s * old + count * mean * new, ref)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def _learn_lag(self, versions: Tensor | None, selected: Tensor | None, g: float) -> None:
        self._lag = self._lag * g
        if versions is None or selected is None:
            return
        known = ~torch.isnan(selected)
        if bool(known.any()):
            gaps = versions.to(_F64)[known] - selected.to(_F64)[known]
            self._lag += torch.stack([gaps.new_tensor(float(gaps.numel())), gaps.sum()])

    def _learn_prior_error(
        self, prior: Tensor, y: Tensor, w: Tensor, fresh: Tensor, g: float
    ) -> None:
        """Add first-seen reports of n ≥ 2 rewards to the per-bin τ² estimate (decayed)."""
        self._eb = self._eb * g
        use = fresh & (w >= 2)
        if not bool(use.any()):
            return
        p, ym, wm = prior[use].clamp(0.0, 1.0), y[use], w[use]
        tau2 = (ym - p) ** 2 - ym * (1 - ym) / (wm - 1)  # unbiased for (p_true − p̂)²
        bins = _bins(p)
        self._eb[0].index_add_(0, bins, torch.ones_like(p))
        self._eb[1].index_add_(0, bins, tau2)

    @staticmethod
    def _effective(novelty: Tensor | None, c: Tensor | float) -> Tensor | float:
        return c if novelty is None else c / novelty.clamp(min=1.0)

    def state(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "items": [(h, n, s, v) for h, (n, s, v) in self._items.items()],
            "errors": self._errors.clone(),
            "eb": self._eb.clone(),
            "lag": self._lag.clone(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()``. A state of a release before the empirical count has one error
        per fixed c: the empirical candidate starts with the largest of them (last choice)
        and an empty τ² estimate."""
        self.version = float(state["version"])
        items = state["items"][-self.capacity :]
        self._items = OrderedDict((h, (float(n), float(s), float(v))) for h, n, s, v in items)
        lag = state.get("lag")
        self._lag = lag.clone().to(_F64) if lag is not None else torch.zeros(2, dtype=_F64)
        errors = state["errors"].clone().to(_F64)
        if errors.shape[0] == len(PSEUDO_COUNTS):
            errors = torch.cat([errors, errors.max().reshape(1)])
        if errors.shape != (len(PSEUDO_COUNTS) + 1,):
            raise ValueError(
                f"the prompt history holds {errors.shape[0]} pseudo-count errors, this release "
                f"{len(PSEUDO_COUNTS) + 1}: the state was written by another release"
            )
        self._errors = errors
        eb = state.get("eb")
        self._eb = eb.clone().to(_F64) if eb is not None else torch.zeros(2, EB_BINS, dtype=_F64)
        if self._eb.shape != (2, EB_BINS):
            raise ValueError(
                f"the prompt history's prior-error table has shape {tuple(self._eb.shape)}, "
                f"expected (2, {EB_BINS})"
            )


def _bins(p: Tensor) -> Tensor:
    """[N] p̂ in [0, 1] -> [N] bin index in 0..EB_BINS − 1."""
    return (p * EB_BINS).long().clamp(0, EB_BINS - 1)


def beta_posterior(prior: Tensor, n: Tensor, s: Tensor, c: Tensor | float) -> tuple[Tensor, Tensor]:
    """Mean of Beta(c·p̂ + s, c·(1 − p̂) + n − s) and an sd, elementwise over [N].

    The sd is that of the same Beta with half a success and half a failure added
    (Jeffreys): sqrt(m(1 − m) / (c + n + 2)) with m = (c·p̂ + s + ½) / (c + n + 1). Without
    them a p̂ clamped to 0 or 1, or a prompt whose rewards were all equal, would claim sd 0
    however little is known; with them the sd only shrinks with weight (c small for prompts
    unlike the window, so those stay uncertain whatever their p̂). With c = n = 0 the mean is
    p̂ and the sd sqrt(1/8) ≈ 0.35, widest where nothing is known.
    """
    a = c * prior + s
    total = c + n
    mean = torch.where(total > 0, a / total.clamp(min=1e-12), prior)
    smoothed = (a + 0.5) / (total + 1)
    sd = torch.sqrt(smoothed * (1 - smoothed) / (total + 2))
    return mean, sd
