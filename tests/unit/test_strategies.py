"""Selection strategies on a pool with known success rates and a scripted roller."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sweetspot_trainer.rollout import Rollout
from sweetspot_trainer.selection import STRATEGIES, StrategyContext, make_strategy
from sweetspot_trainer.selection.simple import BayesStrategy
from sweetspot_trainer.tasks import Problem

# p(x) per prompt: a third never solved, a third always, a third half the time.
RATES = [0.0] * 10 + [1.0] * 10 + [0.5] * 10
POOL = [
    Problem(id=f"q{i}", prompt=f"q{i}", answer="", difficulty=str(p)) for i, p in enumerate(RATES)
]


class ScriptedRoller:
    """Rewards drawn with each prompt's known rate; counts what it was asked for."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.calls: list[tuple[int, int]] = []

    def __call__(
        self, problems: list[Problem], n: int
    ) -> tuple[list[list[Rollout]], list[list[float]]]:
        self.calls.append((len(problems), n))
        rewards = []
        for p in problems:
            rate = float(p.difficulty)
            if rate == 0.5:  # exactly half, so every such group is effective
                group = [1.0, 0.0] * (n // 2) + [1.0] * (n % 2)
                self.rng.shuffle(group)
            else:
                group = [rate] * n
            rewards.append(group)
        groups = [[Rollout([1], [2], "", True) for _ in range(n)] for _ in problems]
        return groups, rewards

    @property
    def rollouts(self) -> int:
        return sum(b * n for b, n in self.calls)


def ctx(roller: ScriptedRoller | None = None, **options: Any) -> StrategyContext:
    return StrategyContext(pool=POOL, m=4, n=4, seed=0, k=4, roll=roller, **options)


def rate(p: Problem) -> float:
    return float(p.difficulty)


def test_unknown_strategy_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="dynamic_sampling"):
        make_strategy("greso", ctx())
    with pytest.raises(ValueError, match="needs a SweetspotClient"):
        make_strategy("pcl", ctx())
    for name in ("prefilter", "dynamic_sampling", "rollout_screen"):
        with pytest.raises(ValueError, match="roller"):
            make_strategy(name, ctx())
    assert set(STRATEGIES) >= {"uniform", "pcl", "bayes", "history", "prefilter", "dps"}


def test_dynamic_sampling_keeps_only_effective_groups_and_counts_the_rest() -> None:
    roller = ScriptedRoller()
    strategy = make_strategy("dynamic_sampling", ctx(roller))
    for _ in range(5):
        before = roller.rollouts
        selection = strategy.select()
        assert len(selection.problems) == 4
        assert all(rate(p) == 0.5 for p in selection.problems)
        assert selection.rewards is not None and selection.groups is not None
        assert all(max(r) > min(r) for r in selection.rewards)
        spent = roller.rollouts - before
        assert selection.extra_rollouts == spent - 4 * 4  # all but the m·n that train


def test_dynamic_sampling_tops_up_when_its_rounds_run_out() -> None:
    roller = ScriptedRoller()
    pool = POOL[:20]  # nothing effective at all
    strategy = make_strategy(
        "dynamic_sampling",
        StrategyContext(pool=pool, m=4, n=2, seed=0, roll=roller, max_rounds=2),
    )
    selection = strategy.select()
    assert len(selection.problems) == 4 and roller.rollouts == 2 * 4 * 2
    assert selection.extra_rollouts == 4 * 2


def test_rollout_screen_keeps_estimates_nearest_tau() -> None:
    roller = ScriptedRoller()
    strategy = make_strategy("rollout_screen", ctx(roller, screen_samples=2))
    for _ in range(4):
        selection = strategy.select()
        assert selection.extra_rollouts == 16 * 2
        assert selection.groups is None  # the loop rolls the full n afterwards
        assert selection.predicted is not None
    assert roller.calls == [(16, 2)] * 4


def test_rollout_screen_prefers_intermediate_prompts() -> None:
    roller = ScriptedRoller()
    strategy = make_strategy("rollout_screen", ctx(roller, screen_samples=2))
    chosen = [rate(p) for _ in range(6) for p in strategy.select().problems]
    assert chosen.count(0.5) / len(chosen) > 0.9


def test_prefilter_screens_the_pool_once() -> None:
    roller = ScriptedRoller()
    strategy = make_strategy(
        "prefilter", ctx(roller, prefilter_samples=2, prefilter_band=(0.1, 0.9))
    )
    first = strategy.select()
    assert first.extra_rollouts == 30 * 2 and roller.calls == [(30, 2)]
    for _ in range(3):
        later = strategy.select()
        assert later.extra_rollouts == 0 and all(rate(p) == 0.5 for p in later.problems)
    assert roller.calls == [(30, 2)]


def test_history_skips_prompts_whose_groups_taught_nothing() -> None:
    strategy = make_strategy("history", ctx(revisit=0.0))
    roller = ScriptedRoller()
    for _ in range(8):  # first pass over the pool: everything unseen is taken
        selection = strategy.select()
        strategy.observe(selection, roller(selection.problems, 4)[1])
    later = [rate(p) for _ in range(10) for p in strategy.select().problems]
    assert set(later) == {0.5}


@pytest.mark.parametrize("decay", [1.0, 0.9], ids=["bayes", "mopps"])
def test_bayes_learns_which_prompts_are_intermediate(decay: float) -> None:
    strategy = make_strategy("bayes", ctx(bayes_decay=decay))
    roller = ScriptedRoller()
    for _ in range(40):
        selection = strategy.select()
        strategy.observe(selection, roller(selection.problems, 4)[1])
    late = [rate(p) for _ in range(10) for p in strategy.select().problems]
    assert late.count(0.5) / len(late) > 0.6  # uniform would give 1/3


def test_bayes_decay_forgets_toward_the_prior_as_mopps() -> None:
    strategy = make_strategy("bayes", ctx(bayes_decay=0.5))
    assert isinstance(strategy, BayesStrategy)
    selection = strategy.select()  # step 1
    first = selection.problems[0]
    i = POOL.index(first)
    strategy.observe(selection, [[1.0, 1.0, 1.0, 0.0]] * len(selection.problems))
    assert strategy.posterior(i) == (4.0, 2.0)  # Beta(1, 1) + 3 successes, 1 failure
    for _ in range(2):  # two steps later: half of the counts beyond the prior, twice
        strategy.select()
    assert strategy.posterior(i) == pytest.approx((1.0 + 3 / 4, 1.0 + 1 / 4))
    keeps = make_strategy("bayes", ctx())  # λ = 1: nothing is forgotten
    assert isinstance(keeps, BayesStrategy)
    selection = keeps.select()
    keeps.observe(selection, [[1.0, 1.0, 1.0, 0.0]] * len(selection.problems))
    keeps.select()
    assert keeps.posterior(POOL.index(selection.problems[0])) == (4.0, 2.0)


def test_dps_learns_which_prompts_are_partly_solved() -> None:
    strategy = make_strategy("dps", ctx())
    roller = ScriptedRoller()
    for _ in range(20):
        selection = strategy.select()
        assert selection.extra_rollouts == 0  # chooses before any rollout
        strategy.observe(selection, roller(selection.problems, 4)[1])
    late = [rate(p) for _ in range(10) for p in strategy.select().problems]
    assert late.count(0.5) / len(late) > 0.8  # uniform would give 1/3
