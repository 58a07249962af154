"""``select_nearest``: the m scores closest to tau, closest first, ties broken at random."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sweetspot_client import select_nearest


def test_picks_the_m_closest_to_tau_closest_first() -> None:
    scores = [0.9, 0.45, 0.1, 0.62, 0.5, 0.3, 0.0]
    # distances to 0.5:  0.4, 0.05, 0.4, 0.12, 0.0, 0.2, 0.5
    assert select_nearest(scores, 3, rng=random.Random(0)) == [4, 1, 3]
    assert select_nearest(scores, 4, tau=0.8, rng=random.Random(0)) == [0, 3, 4, 1]


def test_m_equal_to_n_returns_a_full_ranking() -> None:
    scores = [0.2, 0.8, 0.55, 0.4]
    ranking = select_nearest(scores, 4, rng=random.Random(0))
    assert sorted(ranking) == [0, 1, 2, 3]
    assert ranking[:2] == [2, 3]
    assert set(ranking[2:]) == {0, 1}


def test_ties_are_broken_at_random() -> None:
    """A fresh model predicts the same p̂ everywhere; a fixed order would always pick index 0."""
    scores = [0.5] * 8
    firsts = {select_nearest(scores, 1, rng=random.Random(seed))[0] for seed in range(200)}
    assert firsts == set(range(8))
    picks = {tuple(select_nearest(scores, 3, rng=random.Random(seed))) for seed in range(20)}
    assert len(picks) > 1


def test_ties_only_reorder_equal_distances() -> None:
    """0.4 and 0.6 are equally far from 0.5; both always come before 0.9."""
    scores = [0.9, 0.4, 0.6]
    orders = {tuple(select_nearest(scores, 3, rng=random.Random(seed))) for seed in range(50)}
    assert orders == {(1, 2, 0), (2, 1, 0)}


def test_same_seed_gives_the_same_choice() -> None:
    scores = [0.5, 0.5, 0.7, 0.3, 0.5, 0.5]
    first = select_nearest(scores, 4, rng=random.Random(1234))
    for _ in range(5):
        assert select_nearest(scores, 4, rng=random.Random(1234)) == first


def test_without_rng_still_returns_the_nearest() -> None:
    assert select_nearest([0.1, 0.5, 0.9], 1) == [1]


@pytest.mark.parametrize("m", [0, -1, 4])
def test_m_out_of_range_raises(m: int) -> None:
    with pytest.raises(ValueError, match=rf"between 1 and the number of scores \(3\), got {m}"):
        select_nearest([0.1, 0.5, 0.9], m)


def test_empty_scores_raise() -> None:
    with pytest.raises(ValueError, match=r"\(0\)"):
        select_nearest([], 1)


@pytest.mark.parametrize(
    ("tau", "expected"),
    [(0.0, [3, 0, 2, 1]), (1.0, [1, 2, 0, 3])],
)
def test_tau_at_the_edges(tau: float, expected: list[int]) -> None:
    scores = [0.3, 1.0, 0.7, 0.0]
    assert select_nearest(scores, 4, tau=tau, rng=random.Random(0)) == expected


@given(
    scores=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
    tau=st.floats(0.0, 1.0),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_chosen_are_never_farther_than_unchosen(
    scores: list[float], tau: float, data: st.DataObject, seed: int
) -> None:
    m = data.draw(st.integers(1, len(scores)), label="m")
    chosen = select_nearest(scores, m, tau=tau, rng=random.Random(seed))
    assert len(chosen) == m
    assert len(set(chosen)) == m
    distances = [abs(scores[i] - tau) for i in chosen]
    assert distances == sorted(distances)
    unchosen = [abs(s - tau) for i, s in enumerate(scores) if i not in set(chosen)]
    if unchosen:
        assert max(distances) <= min(unchosen)


def test_band_draws_only_inside_when_enough_are_there() -> None:
    from sweetspot_client import select_band

    scores = [0.5, 0.45, 0.9, 0.05, 0.6, 0.55, 0.0]
    seen: set[int] = set()
    for seed in range(50):
        chosen = select_band(scores, 2, 0.5, epsilon=0.1, rng=random.Random(seed))
        assert len(set(chosen)) == 2
        assert all(abs(scores[i] - 0.5) <= 0.1 for i in chosen)
        seen.update(chosen)
    assert seen == {0, 1, 4, 5}  # every in-band candidate gets picked sometimes


def test_band_tops_up_by_distance() -> None:
    from sweetspot_client import select_band

    scores = [0.5, 0.9, 0.2, 0.05]
    chosen = select_band(scores, 3, 0.5, epsilon=0.1, rng=random.Random(0))
    assert chosen == [0, 2, 1]  # the one inside, then |0.2-0.5| < |0.9-0.5| < |0.05-0.5|


def test_weighted_prefers_high_variance_but_reaches_everyone() -> None:
    from sweetspot_client import select_weighted

    scores = [0.5, 0.02, 0.98, 0.3]
    counts = [0, 0, 0, 0]
    for seed in range(2000):
        for i in select_weighted(scores, 1, rng=random.Random(seed)):
            counts[i] += 1
    assert counts[0] > counts[3] > counts[1]
    assert counts[1] > 0 and counts[2] > 0
    # p(1-p): 0.25, 0.0196, 0.0196, 0.21 (+ floor) -> share of index 0 about 0.5
    assert 0.4 < counts[0] / 2000 < 0.6


def test_select_dispatches_by_name_and_lists_rules() -> None:
    from sweetspot_client import select

    scores = [0.1, 0.5, 0.9]
    assert select(scores, 1, rule="nearest", rng=random.Random(0)) == [1]
    with pytest.raises(ValueError, match=r"\['band', 'nearest', 'random', 'signal', 'weighted'\]"):
        select(scores, 1, rule="greedy")
    for rule in ("nearest", "band", "weighted"):
        assert len(set(select(scores, 3, rule=rule, rng=random.Random(1)))) == 3


def test_expected_signal_matches_monte_carlo_under_the_beta() -> None:
    from sweetspot_client.selection import expected_signal

    rng = random.Random(0)
    p, sd, n = 0.2, 0.15, 8
    total = p * (1 - p) / sd**2 - 1
    draws = [rng.betavariate(p * total, (1 - p) * total) for _ in range(200_000)]
    monte_carlo = sum(1 - q**n - (1 - q) ** n for q in draws) / len(draws)
    assert expected_signal(p, sd, n) == pytest.approx(monte_carlo, abs=0.005)
    assert expected_signal(0.5, None, 2) == pytest.approx(0.5)  # a point mass: 1 − 2·0.25


def test_signal_ranks_by_expected_signal_not_by_the_plug_in_score() -> None:
    from sweetspot_client import select

    scores = [0.05, 0.05, 0.5, 0.98]
    picked = select(
        scores, 3, rule="signal", uncertainty=[0.08, 0.0, 0.05, 0.01], rng=random.Random(1)
    )
    assert picked == [2, 1, 0]  # same mean: the confident 0.05 (0.34) before the wide (0.24)
    with pytest.raises(ValueError, match="one entry per score"):
        select(scores, 1, rule="signal", uncertainty=[0.1])


def test_random_ignores_the_scores_and_keeps_m_distinct() -> None:
    from sweetspot_client import select

    scores = [0.5] * 3 + [0.0] * 17
    picks = [select(scores, 3, rule="random", rng=random.Random(seed)) for seed in range(50)]
    assert all(len(set(p)) == 3 for p in picks)
    assert sum(set(p) == {0, 1, 2} for p in picks) < 5  # nearest would pick {0, 1, 2} always
