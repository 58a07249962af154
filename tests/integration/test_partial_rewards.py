"""Partial-credit rewards end to end: a reasoning-gym task scored with ``--reward partial``,
reported by the trainer's PCL strategy to a real service, which records them as they are."""

from __future__ import annotations

import statistics

import pytest

from sweetspot_client import SweetspotClient
from sweetspot_trainer.selection import StrategyContext, make_strategy
from sweetspot_trainer.tasks import make_task


def test_the_service_records_partial_credit(client: SweetspotClient) -> None:
    task = make_task("reasoning_gym:power_function", seed=7, size=6, partial_credit=True)
    strategy = make_strategy(
        "pcl", StrategyContext(pool=task.problems, m=2, n=4, seed=0, k=3, client=client)
    )
    selection = strategy.select()
    rewards = [
        [task.reward(p, c) for c in (f"Answer: {p.answer}", "Answer: 12345", "Answer: 7", "")]
        for p in selection.problems
    ]
    assert rewards == [[1.0, 0.01, 0.01, 0.0]] * 2  # not binarised

    metrics = strategy.observe(selection, rewards)
    assert metrics["value_version"] >= 1

    stats = client.stats([p.prompt for p in selection.problems]).stats
    for stat, observed in zip(stats, rewards, strict=True):
        assert stat.count == 4
        assert stat.mean_reward == pytest.approx(statistics.fmean(observed))  # 0.255, not 0.25
