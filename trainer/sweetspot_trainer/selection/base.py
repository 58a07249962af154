"""What every selection strategy shares: the protocol, the step's selection, a context.

A strategy answers ``select()`` with the step's m problems. Rollout-based strategies
(dynamic sampling) may hand back the training rollouts they already generated; screening
rollouts that do not train the policy are counted in ``extra_rollouts`` so benchmarks can
charge them. ``observe()`` reads the step's rewards back.

A strategy whose ``observe()`` calls a service (``remote = True``: PCL) may be observed on a
worker thread while the loop goes on (``--value-update overlapped``, see
``sweetspot_trainer.feedback``); its ``observe`` must then touch nothing ``select`` reads.
Strategies that keep their own state (``remote = False``) are always observed in the loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from torch import Tensor

from sweetspot_client import CurriculumBatch, EpochSampler, SelectionRule, SweetspotClient
from sweetspot_trainer.config import InitialBelief, TransitionPrior
from sweetspot_trainer.rollout import Rollout
from sweetspot_trainer.tasks import Problem

# Roll n answers for each problem and score them: ([B] problems, n) -> ([B][n], [B][n]).
Roller = Callable[[list[Problem], int], tuple[list[list[Rollout]], list[list[float]]]]
# A feature run's vectors of [B] problems: [B, feature_width] (``--value-features policy``).
Featurizer = Callable[[list[Problem]], Tensor]


@dataclass(frozen=True)
class Selection:
    problems: list[Problem]
    predicted: list[float] | None = None
    batch: CurriculumBatch[Problem] | None = field(default=None, repr=False)
    groups: list[list[Rollout]] | None = field(default=None, repr=False)
    rewards: list[list[float]] | None = None
    extra_rollouts: int = 0
    model_version: int | None = None
    """Version of the value model that chose (PCL); ``None`` for strategies without one."""


class SelectionStrategy(Protocol):
    name: str
    remote: bool
    """``observe`` talks to a service and is safe on another thread than ``select``."""

    def select(self) -> Selection: ...

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        """Learn from the rewards of ``selection`` ([m][n]); returns metrics to log."""
        ...


@dataclass
class StrategyContext:
    """Everything a strategy may need; each takes what it uses."""

    pool: list[Problem]
    m: int
    n: int
    seed: int
    k: int = 4
    tau: float = 0.5
    client: SweetspotClient | None = None
    roll: Roller | None = None
    features: Featurizer | None = None  # pcl, random: vectors sent instead of prompt text
    # Strategy options (each strategy reads its own; the trainer fills them from its config).
    rule: SelectionRule = "nearest"  # pcl
    epsilon: float = 0.2  # pcl, rule "band"
    screen_samples: int = 3  # rollout_screen
    prefilter_samples: int = 4  # prefilter
    prefilter_band: tuple[float, float] = (0.1, 0.9)  # prefilter
    revisit: float = 0.1  # history
    bayes_decay: float = 1.0  # bayes: λ, share of the learnt Beta counts kept per step
    max_rounds: int = 8  # dynamic_sampling
    dps_prior: TransitionPrior = "uniform"  # dps: shape of the prior transition counts
    dps_prior_count: float = 1.0  # dps: scale of those counts (weight of the prior)
    dps_decay: float = 0.7  # dps: λ, how much of the learnt counts each step keeps
    dps_initial_belief: InitialBelief = "uniform"  # dps: state of prompts never observed

    def sampler(self) -> EpochSampler:
        return EpochSampler(len(self.pool), rng=random.Random(self.seed))

    def need_roller(self, name: str) -> Roller:
        if self.roll is None:
            raise ValueError(f"selection {name!r} rolls out candidates: give it a roller")
        return self.roll


def is_effective(rewards: list[float]) -> bool:
    """A group teaches something only when its rewards differ."""
    return max(rewards) > min(rewards)
