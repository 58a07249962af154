"""Selection strategies: which m prompts the policy trains on at each step.

``make_strategy(name, ctx)`` builds one by name; unknown names raise ``ValueError``
listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable

from sweetspot_trainer.selection.base import (
    Roller,
    Selection,
    SelectionStrategy,
    StrategyContext,
)
from sweetspot_trainer.selection.dps import DPSStrategy
from sweetspot_trainer.selection.rollout_based import (
    DynamicSamplingStrategy,
    PrefilterStrategy,
    RolloutScreenStrategy,
)
from sweetspot_trainer.selection.simple import (
    BayesStrategy,
    HistoryStrategy,
    PCLStrategy,
    RandomPlaceboStrategy,
    UniformStrategy,
)

STRATEGIES: dict[str, Callable[[StrategyContext], SelectionStrategy]] = {
    "uniform": UniformStrategy,
    "pcl": PCLStrategy,
    "random": RandomPlaceboStrategy,
    "bayes": BayesStrategy,
    "history": HistoryStrategy,
    "prefilter": PrefilterStrategy,
    "dynamic_sampling": DynamicSamplingStrategy,
    "rollout_screen": RolloutScreenStrategy,
    "dps": DPSStrategy,
}


def make_strategy(name: str, ctx: StrategyContext) -> SelectionStrategy:
    """Build the strategy called ``name``."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown selection {name!r}; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[name](ctx)


__all__ = [
    "STRATEGIES",
    "Roller",
    "Selection",
    "SelectionStrategy",
    "StrategyContext",
    "make_strategy",
]
