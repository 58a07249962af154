"""The placebo arm shares PCL's code path: the same candidates and service calls, a random m."""

from __future__ import annotations

from sweetspot_client import SweetspotClient, select_nearest
from sweetspot_trainer.selection import StrategyContext, make_strategy
from sweetspot_trainer.tasks import Problem
from sweetspot_trainer.train import ensure_run

POOL = [
    Problem(f"p{i}", f"What is {i} + {i % 7}?" + " Explain." * (i % 3), "", "") for i in range(48)
]


def test_random_draws_pcls_candidates_reports_like_pcl_and_ignores_the_scores(
    service_url: str,
) -> None:
    clients, arms = {}, {}
    for name in ("pcl", "random"):
        clients[name] = SweetspotClient(base_url=service_url, run=f"placebo-{name}")
        ensure_run(clients[name], f"placebo-{name}")
        context = StrategyContext(POOL, m=3, n=4, seed=5, client=clients[name])
        arms[name] = make_strategy(name, context)
    kept_nearest = []
    for step in range(6):
        candidates = {}
        for name, strategy in arms.items():
            selection = strategy.select()
            assert selection.batch is not None and selection.batch.fallback is None
            candidates[name] = selection.batch.candidates
            rewards = [[1.0, 0.0, float(step % 2), 0.0] for _ in selection.problems]
            assert strategy.observe(selection, rewards)["value_version"] == step + 1
            if name == "random":
                offered = [POOL[i].prompt for i in candidates[name] or []]
                scores = clients[name].score(offered).scores
                nearest = {offered[i] for i in select_nearest(scores, 3)}
                kept_nearest.append({p.prompt for p in selection.problems} == nearest)
        assert candidates["pcl"] == candidates["random"]  # same seed: the same 12 candidates
    assert not all(kept_nearest), "the placebo kept the nearest-τ prompts every time"
    for client in clients.values():
        client.close()
