"""Strategies that spend no rollouts on choosing: uniform, PCL, Bayesian, history."""

from __future__ import annotations

import dataclasses
import random

from sweetspot_client import PromptCurriculum, select_nearest
from sweetspot_trainer.selection.base import (
    Selection,
    StrategyContext,
    is_effective,
)


class UniformStrategy:
    """Plain GRPO: m prompts per step, each pass over the pool in a fresh random order."""

    name = "uniform"
    remote = False

    def __init__(self, ctx: StrategyContext) -> None:
        self.pool, self.m = ctx.pool, ctx.m
        self._sampler = ctx.sampler()

    def select(self) -> Selection:
        return Selection([self.pool[i] for i in self._sampler.draw(self.m)])

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        return {}


class PCLStrategy:
    """Prompt Curriculum Learning: the service's value model keeps m of k·m candidates.

    ``ctx.rule``: 'nearest' (paper), 'band' (within ``ctx.epsilon``), 'weighted', 'signal'
    (for groups of ``ctx.n`` answers).
    """

    name = "pcl"
    remote = True

    def __init__(self, ctx: StrategyContext) -> None:
        if ctx.client is None:
            raise ValueError("selection 'pcl' needs a SweetspotClient (service_url or embedded)")
        self.curriculum = PromptCurriculum(
            ctx.client,
            ctx.pool,
            m=ctx.m,
            k=ctx.k,
            tau=ctx.tau,
            prompt_fn=lambda p: p.prompt,
            seed=ctx.seed,
            rule=ctx.rule,
            epsilon=ctx.epsilon,
            group_size=ctx.n,
            features=ctx.features,
        )

    def select(self) -> Selection:
        batch = self.curriculum.next_batch()
        return Selection(
            batch.items, predicted=batch.predicted, batch=batch, model_version=batch.model_version
        )

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        assert selection.batch is not None, "PCLStrategy.observe needs its own selection"
        answer = self.curriculum.report(selection.batch, rewards)
        return {
            "value_mae": answer.mae_before,
            "value_mse": answer.mse_before,
            "value_loss": answer.loss,
            "value_version": float(answer.model_version),
        }


class BayesStrategy:
    """A Beta posterior per prompt (prior Beta(1, 1)); of k·m candidates keep the m whose
    Thompson sample lies nearest τ. Rollout-free, but it knows nothing of unseen prompts.

    ``ctx.bayes_decay`` (λ < 1) makes it MoPPS (arXiv 2507.04632): each training step every
    prompt keeps a share λ of its counts beyond the prior, so the posterior follows a moving
    policy. The decay is applied when a prompt is next read (λ^(steps since its last
    update)): the same numbers as decaying the whole pool every step, at O(k·m) a step.
    """

    name = "bayes"
    remote = False

    def __init__(self, ctx: StrategyContext) -> None:
        self.pool, self.m, self.k, self.tau = ctx.pool, ctx.m, ctx.k, ctx.tau
        self.decay = ctx.bayes_decay
        self._sampler = ctx.sampler()
        self._rng = random.Random(ctx.seed + 1)
        self.alpha = [1.0] * len(ctx.pool)
        self.beta = [1.0] * len(ctx.pool)
        self._updated = [0] * len(ctx.pool)  # step of each prompt's last decay
        self.step = 0
        self._index = {p.id: i for i, p in enumerate(ctx.pool)}

    def posterior(self, i: int) -> tuple[float, float]:
        """Prompt ``i``'s Beta(α, β) now, its decay since the last update applied."""
        if self.decay < 1.0 and self._updated[i] < self.step:
            keep = self.decay ** (self.step - self._updated[i])
            self.alpha[i] = 1.0 + keep * (self.alpha[i] - 1.0)
            self.beta[i] = 1.0 + keep * (self.beta[i] - 1.0)
            self._updated[i] = self.step
        return self.alpha[i], self.beta[i]

    def select(self) -> Selection:
        self.step += 1
        candidates = self._sampler.draw(min(self.k * self.m, len(self.pool)))
        draws = [self._rng.betavariate(*self.posterior(i)) for i in candidates]
        kept = select_nearest(draws, self.m, self.tau, rng=self._rng)
        chosen = [candidates[j] for j in kept]
        means = [self.alpha[i] / (self.alpha[i] + self.beta[i]) for i in chosen]
        return Selection([self.pool[i] for i in chosen], predicted=means)

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        errors = []
        for problem, observed, predicted in zip(
            selection.problems, rewards, selection.predicted or [], strict=True
        ):
            i = self._index[problem.id]  # select() brought its posterior up to this step
            total = sum(observed)
            errors.append(abs(predicted - total / len(observed)))
            self.alpha[i] += total
            self.beta[i] += len(observed) - total
        return {"value_mae": sum(errors) / len(errors)}


class HistoryStrategy:
    """GRESO-style: skip prompts whose last group was all-correct or all-wrong, except with
    probability ``revisit`` (default 0.1); unseen prompts are always taken."""

    name = "history"
    remote = False

    def __init__(self, ctx: StrategyContext) -> None:
        self.pool, self.m = ctx.pool, ctx.m
        self.revisit = ctx.revisit
        self._sampler = ctx.sampler()
        self._rng = random.Random(ctx.seed + 2)
        self._last_effective: dict[str, bool] = {}

    def select(self) -> Selection:
        chosen: list[int] = []
        looked = 0
        while len(chosen) < self.m:
            (i,) = self._sampler.draw(1)
            looked += 1
            if i in chosen:
                continue
            seen = self._last_effective.get(self.pool[i].id)
            if (
                seen is None
                or seen
                or self._rng.random() < self.revisit
                or looked > 20 * len(self.pool)  # everything is skippable: stop skipping
            ):
                chosen.append(i)
        return Selection([self.pool[i] for i in chosen])

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        for problem, observed in zip(selection.problems, rewards, strict=True):
            self._last_effective[problem.id] = is_effective(observed)
        return {"history_skippable": float(sum(not v for v in self._last_effective.values()))}


class RandomPlaceboStrategy(PCLStrategy):
    """PCL's placebo: the same candidate draws, the same ``/v1/select`` and ``/v1/update``
    calls, but the m prompts are kept at random (rule ``random``), so a difference to PCL is
    the value model's choice and nothing else."""

    name = "random"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(dataclasses.replace(ctx, rule="random"))
