"""Selection strategies: which m prompts the policy trains on at each step.

Every strategy answers ``select()`` with the step's problems and reads the observed
rewards back through ``observe()``. ``make_strategy`` builds one by name.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sweetspot_client import CurriculumBatch, EpochSampler, PromptCurriculum, SweetspotClient
from sweetspot_trainer.tasks import Problem


@dataclass(frozen=True)
class Selection:
    problems: list[Problem]
    predicted: list[float] | None = None
    batch: CurriculumBatch[Problem] | None = field(default=None, repr=False)


class SelectionStrategy(Protocol):
    name: str

    def select(self) -> Selection: ...

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        """Learn from the rewards of ``selection`` ([m][n]); returns metrics to log."""
        ...


class UniformStrategy:
    """Plain GRPO: m prompts per step, each pass over the pool in a fresh random order."""

    name = "uniform"

    def __init__(self, pool: list[Problem], *, m: int, seed: int) -> None:
        self.pool, self.m = pool, m
        self._sampler = EpochSampler(len(pool), rng=random.Random(seed))

    def select(self) -> Selection:
        return Selection([self.pool[i] for i in self._sampler.draw(self.m)])

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        return {}


class PCLStrategy:
    """Prompt Curriculum Learning: the service's value model keeps the m of k·m nearest τ."""

    name = "pcl"

    def __init__(
        self,
        pool: list[Problem],
        *,
        m: int,
        seed: int,
        client: SweetspotClient,
        k: int = 4,
        tau: float = 0.5,
    ) -> None:
        self.curriculum = PromptCurriculum(
            client, pool, m=m, k=k, tau=tau, prompt_fn=lambda p: p.prompt, seed=seed
        )

    def select(self) -> Selection:
        batch = self.curriculum.next_batch()
        return Selection(batch.items, predicted=batch.predicted, batch=batch)

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        assert selection.batch is not None, "PCLStrategy.observe needs its own selection"
        answer = self.curriculum.report(selection.batch, rewards)
        return {
            "value_mae": answer.mae_before,
            "value_mse": answer.mse_before,
            "value_loss": answer.loss,
            "value_version": float(answer.model_version),
        }


StrategyFactory = Callable[..., SelectionStrategy]
STRATEGIES: dict[str, StrategyFactory] = {"uniform": UniformStrategy, "pcl": PCLStrategy}


def make_strategy(
    name: str,
    pool: list[Problem],
    *,
    m: int,
    seed: int,
    client: SweetspotClient | None = None,
    k: int = 4,
    tau: float = 0.5,
) -> SelectionStrategy:
    """Build the strategy called ``name``; raises ``ValueError`` listing the known names."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown selection {name!r}; choose one of {sorted(STRATEGIES)}")
    if name == "pcl":
        if client is None:
            raise ValueError("selection 'pcl' needs a SweetspotClient (service_url or embedded)")
        return PCLStrategy(pool, m=m, seed=seed, client=client, k=k, tau=tau)
    return STRATEGIES[name](pool, m=m, seed=seed)
