"""DPS's hidden Markov filter against hand-computed values, and its choices."""

from __future__ import annotations

import math

import pytest

from sweetspot_trainer.selection import StrategyContext, make_strategy
from sweetspot_trainer.selection.dps import (
    INITIAL_BELIEFS,
    PARTLY,
    SOLVED,
    TRANSITION_PRIORS,
    UNSOLVED,
    DPSFilter,
    observed_state,
    predict,
    soft_counts,
    transition,
)
from sweetspot_trainer.tasks import Problem

THIRD = [1 / 3, 1 / 3, 1 / 3]


def uniform_filter(decay: float = 0.7) -> DPSFilter:
    return DPSFilter(prior_counts=TRANSITION_PRIORS["uniform"], decay=decay, initial=THIRD)


@pytest.mark.parametrize(
    ("rewards", "state"),
    [
        ([0.0, 0.0, 0.0], UNSOLVED),
        ([1.0, 1.0], SOLVED),
        ([1.0, 0.0, 0.0], PARTLY),
        ([0.05, 0.05], UNSOLVED),  # equal partial credit teaches nothing
        ([0.8, 0.8], SOLVED),
        ([0.05, 0.0], PARTLY),
    ],
)
def test_observed_state(rewards: list[float], state: int) -> None:
    assert observed_state(rewards) == state


def test_matrix_helpers() -> None:
    assert transition([[1, 2, 1], [2, 2, 4], [0, 0, 3]]) == [
        [0.25, 0.5, 0.25],
        [0.25, 0.25, 0.5],
        [0.0, 0.0, 1.0],
    ]
    matrix = [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]
    assert predict([0.2, 0.8, 0.0], matrix) == pytest.approx([0.1, 0.5, 0.4])
    # ξ[i][j] ∝ before[i]·P[i][j] at j = observed: 0.2·0.5 and 0.8·0.5 → 0.2 and 0.8
    xi = soft_counts([0.2, 0.8, 0.0], matrix, PARTLY)
    assert [x for row in xi for x in row] == pytest.approx([0, 0.2, 0, 0, 0.8, 0, 0, 0, 0])
    assert soft_counts([1.0, 0.0, 0.0], matrix, SOLVED) == [[0.0] * 3] * 3  # impossible jump


def test_three_steps_of_forward_filtering_by_hand() -> None:
    f = uniform_filter(decay=0.7)

    # Step 1, "a" partly solved. Before: uniform belief, uniform P. ξ[i][PARTLY] = 1/3 each, so
    # counts = 0.7·1 + 0.3·1 + ξ: every row [1, 4/3, 1], P rows [0.3, 0.4, 0.3]; the posterior
    # is one-hot at PARTLY, the prediction its P row.
    f.step({"a": PARTLY})
    assert f.belief("a") == pytest.approx([0.3, 0.4, 0.3])

    # Step 2, "a" not rolled out: the posterior is the prior [0.3, 0.4, 0.3]; the counts decay:
    # 0.7·4/3 + 0.3 = 37/30 in the PARTLY column, so every row of P is [30, 37, 30]/97.
    f.step({})
    assert f.belief("a") == pytest.approx([30 / 97, 37 / 97, 30 / 97])

    # Step 3, "a" solved. ξ[i][SOLVED] ∝ posterior[i]·30/97 → [0.3, 0.4, 0.3]; counts:
    # UNSOLVED column 1, PARTLY 0.7·37/30 + 0.3 = 34.9/30, SOLVED 1 + ξ; the SOLVED row is
    # [1, 34.9/30, 1.3], which over its sum is the prediction.
    f.step({"a": SOLVED})
    row = [1.0, 34.9 / 30, 1.3]
    assert f.belief("a") == pytest.approx([c / sum(row) for c in row])
    assert math.isclose(sum(f.belief("a")), 1.0)


def test_without_decay_the_counts_only_grow() -> None:
    f = uniform_filter(decay=1.0)
    f.step({"a": UNSOLVED})  # rows [4/3, 1, 1] → unsolved row [0.4, 0.3, 0.3]
    assert f.belief("a") == pytest.approx([0.4, 0.3, 0.3])
    f.step({"a": UNSOLVED})
    # before = one-hot UNSOLVED, so ξ[UNSOLVED][UNSOLVED] = 1: that row is [7/3, 1, 1] → /13·3
    assert f.belief("a") == pytest.approx([7 / 13, 3 / 13, 3 / 13])


def test_unseen_prompts_hold_the_initial_belief() -> None:
    f = DPSFilter(
        prior_counts=TRANSITION_PRIORS["progress"], decay=0.7, initial=INITIAL_BELIEFS["partly"]
    )
    assert f.belief("never") == [0.0, 1.0, 0.0]
    f.step({"a": SOLVED})
    f.step({})
    assert f.belief("never") == [0.0, 1.0, 0.0] and len(f) == 1
    assert f.belief("a") != [0.0, 1.0, 0.0]


def test_an_impossible_jump_leaves_finite_beliefs() -> None:
    f = DPSFilter(prior_counts=TRANSITION_PRIORS["local"], decay=0.7, initial=THIRD)
    f.step({"a": UNSOLVED})
    f.step({"a": SOLVED})  # 'local' forbids unsolved → solved in one step
    belief = f.belief("a")
    assert all(math.isfinite(b) for b in belief) and math.isclose(sum(belief), 1.0)
    assert belief[UNSOLVED] == 0.0  # from SOLVED, 'local' allows only PARTLY or SOLVED


def test_bad_options_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="decay"):
        uniform_filter(decay=0.0)
    with pytest.raises(ValueError, match="positive sum"):
        DPSFilter(prior_counts=[[0, 0, 0]] * 3, decay=0.5, initial=THIRD)


POOL = [Problem(id=f"q{i}", prompt=f"q{i}", answer="", difficulty="") for i in range(12)]


def test_ties_between_unseen_prompts_are_seeded() -> None:
    def chosen(seed: int) -> list[str]:
        strategy = make_strategy("dps", StrategyContext(pool=POOL, m=3, n=4, seed=seed, k=4))
        return [p.id for p in strategy.select().problems]

    assert chosen(0) == chosen(0)
    assert len({tuple(chosen(s)) for s in range(5)}) > 1


def test_prefers_prompts_seen_partly_solved_over_unseen_and_settled_ones() -> None:
    strategy = make_strategy(
        "dps", StrategyContext(pool=POOL[:4], m=2, n=2, seed=0, k=2, dps_decay=1.0)
    )
    first = strategy.select()
    rewards = {"q0": [1.0, 0.0], "q1": [0.0, 0.0], "q2": [1.0, 1.0], "q3": [0.0, 1.0]}
    metrics = strategy.observe(first, [rewards[p.id] for p in first.problems])
    assert metrics["dps_tracked"] == 2.0
    second = strategy.select()
    metrics = strategy.observe(second, [rewards[p.id] for p in second.problems])
    assert metrics["dps_tracked"] == 4.0
    # every prompt seen once: the two partly solved ones come first, every time
    for _ in range(3):
        assert {p.id for p in strategy.select().problems} == {"q0", "q3"}
