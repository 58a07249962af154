"""Does a warm-started value model help a new job's first steps? Fork against fresh.

    .venv/bin/python bench/value_model/warm_start.py [--first-steps 12] [--steps 10] [--seeds 1 2]

One real ``sweetspot-serve`` (SmolLM2 backbone, head mode: the trainer's default) and real
``sweetspot-train`` PCL runs against it on the same chain_sum pool:
1. ``job-a`` trains ``--first-steps`` steps (seed 0): its run's value model learns online;
2. for each seed in ``--seeds``, two new jobs of ``--steps`` steps start from the same base
   policy with that seed: ``fork`` reports to a run created with ``"from": "job-a"``
   (``--service-run-from job-a``), ``fresh`` to an empty run. They are the same job except
   for the value model they start from.

Per arm, over its first ``--steps`` updates: the value model's error on the prompts it sees
for the first time in that run (MAE and Spearman of p̂ at selection against the observed
mean reward: the first-seen cohort of ``GET /v1/runs/{name}/calibration``, computed here from
the trainer's records) and the effective ratio of the chosen prompts. The new jobs' policy
is the base policy, not job-a's trained one: the fork's value model tracks a policy a few
steps older than the one it now serves, as a restarted job's would. Writes
bench/results/warm_start.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import spearman, write_result

from sweetspot_service.testing import ServiceProcess
from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.train import run


def job(url: str, run_name: str, seed: int, steps: int, source: str | None) -> list[dict[str, Any]]:
    cfg = TrainConfig(
        selection="pcl",
        service_url=url,
        service_run=run_name,
        service_run_from=source,
        value_update="blocking",
        steps=steps,
        seed=seed,
        task_seed=0,
        output_dir=Path("runs/warm_start") / run_name,
        progress=False,
        plot=False,
    )
    return run(cfg)


def first_seen(records: list[dict[str, Any]]) -> dict[str, Any]:
    """p̂ at selection against the observed mean, for prompts new to the run."""
    seen: set[str] = set()
    predicted, observed = [], []
    for r in records:
        for pid, p_hat, mean in zip(r["prompt_ids"], r["predicted"], r["observed"], strict=True):
            if pid not in seen:
                predicted.append(p_hat)
                observed.append(mean)
            seen.add(pid)
    return {
        "prompts": len(predicted),
        "mae": statistics.fmean(abs(p - o) for p, o in zip(predicted, observed, strict=True)),
        "spearman": spearman(predicted, observed),
        "effective_ratio": statistics.fmean(r["effective_ratio"] for r in records),
        "first_effective_ratio": statistics.fmean(r["effective_ratio"] for r in records[:4]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-steps", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    log = Path("runs/warm_start/service.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    service = ServiceProcess(["--backbone", "smollm2"], log).start()
    rows = []
    try:
        job(service.url, "job-a", 0, args.first_steps, None)
        for seed in args.seeds:
            for arm, source in (("fork", "job-a"), ("fresh", None)):
                records = job(service.url, f"{arm}-{seed}", seed, args.steps, source)
                rows.append({"arm": arm, "seed": seed, **first_seen(records)})
                print(rows[-1], flush=True)
    finally:
        service.kill()
    for arm in ("fork", "fresh"):
        mine = [r for r in rows if r["arm"] == arm]
        print(
            f"{arm:<6} first-seen MAE {statistics.fmean(r['mae'] for r in mine):.3f}  "
            f"effective ratio {statistics.fmean(r['effective_ratio'] for r in mine):.2f}"
        )
    print(f"wrote {write_result('warm_start', {'settings': vars(args)}, rows)}")


if __name__ == "__main__":
    main()
