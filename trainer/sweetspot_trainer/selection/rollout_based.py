"""Strategies that spend rollouts to choose: static prefilter, DAPO dynamic sampling,
SPEED-style screening. Their rollouts are counted (``Selection.extra_rollouts``)."""

from __future__ import annotations

import random
import statistics

from sweetspot_client import select_nearest
from sweetspot_trainer.rollout import Rollout
from sweetspot_trainer.selection.base import Selection, StrategyContext, is_effective


class PrefilterStrategy:
    """Once, with the initial policy: ``prefilter_samples`` (4) rollouts per pool prompt;
    keep those whose success rate lies in ``prefilter_band`` (0.1, 0.9), then uniform.

    When fewer than m survive, the m estimates nearest τ are kept instead.
    """

    name = "prefilter"
    remote = False

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.roll = ctx.need_roller(self.name)
        self.samples = ctx.prefilter_samples
        self.low, self.high = ctx.prefilter_band
        self.kept: list[int] | None = None
        self._rng = random.Random(ctx.seed)

    def _filter(self) -> int:
        _, rewards = self.roll(self.ctx.pool, self.samples)
        estimates = [statistics.fmean(r) for r in rewards]
        kept = [i for i, p in enumerate(estimates) if self.low <= p <= self.high]
        if len(kept) < self.ctx.m:
            kept = select_nearest(estimates, self.ctx.m, self.ctx.tau, rng=self._rng)
        self.kept = kept
        self.estimates = estimates
        return len(self.ctx.pool) * self.samples

    def select(self) -> Selection:
        spent = self._filter() if self.kept is None else 0
        assert self.kept is not None
        chosen = self._rng.sample(self.kept, self.ctx.m)
        return Selection(
            [self.ctx.pool[i] for i in chosen],
            predicted=[self.estimates[i] for i in chosen],
            extra_rollouts=spent,
        )

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        return {"prefilter_kept": float(len(self.kept or []))}


class DynamicSamplingStrategy:
    """DAPO dynamic sampling: roll n per prompt, drop zero-variance groups, draw again until
    m effective groups (or ``max_rounds`` (8) rounds of m; then top up with the
    last groups). The kept groups train the policy; the dropped ones are extra rollouts."""

    name = "dynamic_sampling"
    remote = False

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.roll = ctx.need_roller(self.name)
        self.max_rounds = ctx.max_rounds
        self._sampler = ctx.sampler()

    def select(self) -> Selection:
        m, n = self.ctx.m, self.ctx.n
        kept: list[tuple[int, list[Rollout], list[float]]] = []
        dropped: list[tuple[int, list[Rollout], list[float]]] = []
        for _ in range(self.max_rounds):
            indices = self._sampler.draw(m)
            groups, rewards = self.roll([self.ctx.pool[i] for i in indices], n)
            for i, g, r in zip(indices, groups, rewards, strict=True):
                (kept if is_effective(r) else dropped).append((i, g, r))
            if len(kept) >= m:
                break
        spare = kept[m:]
        kept = kept[:m]
        need = m - len(kept)
        if need > 0:  # budget spent: train on the last groups anyway
            kept += dropped[len(dropped) - need :]
            dropped = dropped[: len(dropped) - need]
        extra = (len(dropped) + len(spare)) * n
        return Selection(
            [self.ctx.pool[i] for i, _, _ in kept],
            groups=[g for _, g, _ in kept],
            rewards=[r for _, _, r in kept],
            extra_rollouts=extra,
        )

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        return {}


class RolloutScreenStrategy:
    """SPEED-style screening: ``screen_samples`` (3) cheap rollouts for each of
    k·m candidates estimate p; keep the m nearest τ; the loop then rolls the full n."""

    name = "rollout_screen"
    remote = False

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.roll = ctx.need_roller(self.name)
        self.samples = ctx.screen_samples
        self._sampler = ctx.sampler()
        self._rng = random.Random(ctx.seed + 3)

    def select(self) -> Selection:
        candidates = self._sampler.draw(min(self.ctx.k * self.ctx.m, len(self.ctx.pool)))
        _, rewards = self.roll([self.ctx.pool[i] for i in candidates], self.samples)
        estimates = [statistics.fmean(r) for r in rewards]
        kept = select_nearest(estimates, self.ctx.m, self.ctx.tau, rng=self._rng)
        return Selection(
            [self.ctx.pool[candidates[j]] for j in kept],
            predicted=[estimates[j] for j in kept],
            extra_rollouts=len(candidates) * self.samples,
        )

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        return {}
