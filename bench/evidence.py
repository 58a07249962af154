"""Does choosing prompts by the value model train faster than chance? A placebo-controlled
learning benchmark over paired seeds, in two pool regimes, accumulated across sessions.

    .venv/bin/python bench/evidence.py --regime cold --arms random uniform pcl dps --seeds 0 1
    .venv/bin/python bench/evidence.py --regime warm --arms random pcl --seeds 0 --merge
    .venv/bin/python bench/evidence.py --summary          # tables from the saved runs only

Every run trains SmolLM2-135M from the same weights with the trainer's defaults (embedded
service, head-mode value model, blocking value update on CPU), ``--steps`` steps of m × n
rollouts, on ``chain_sum`` problems generated with ``--task-seed`` (the same problems and the
same ``--holdout`` held-out problems for every arm and seed of a regime). The seed changes the
policy's sampling, the candidate draws and the strategies' randomness: a seed is a pair.

Arms (``sweetspot-train --selection``): ``random`` is the placebo: m of the same k·m candidates
at random through PCL's own code path (same draws, same service calls, scores ignored);
``uniform`` draws m; ``pcl`` keeps the m nearest τ; ``dps`` and ``dynamic_sampling`` as named.

Regimes: *cold*, one pass over a pool several times larger than a run draws (a run sees each
candidate at most once: only a value model can know anything about it); *warm*, a small pool
revisited (``steps·m·k / pool`` ≥ 4 passes: per-prompt history can help).

**Primary endpoint, fixed before any run**: held-out mean@N (``--eval-samples`` answers per
held-out problem at temperature 1) after the last step, as a paired difference per seed
against the placebo, then against uniform. Secondary: mean@N at the midpoint, greedy accuracy,
effective ratio, wall time (noisy on a shared machine). Each (regime, arm, seed) run is saved
to bench/results/evidence.json as soon as it ends (``--merge`` adds to the file; runs of
another budget are refused).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, saved_for_merge, write_result
from _stats import (
    bootstrap_ci95,
    iqm,
    mean_ci95,
    minimum_detectable,
    paired,
    probability_of_improvement,
)

NAME = "evidence"
POOLS = {"cold": 1792, "warm": 96}
"""Training problems per regime (the held-out ones come on top)."""
BUDGET_KEYS = ("steps", "m", "n", "k", "lr", "holdout", "eval_samples", "eval_every", "task_seed")
PRIMARY = "final_mean_at_n"
Row = dict[str, Any]


def train_one(regime: str, arm: str, seed: int, args: argparse.Namespace) -> Row:
    from sweetspot_trainer.config import TrainConfig
    from sweetspot_trainer.train import run

    cfg = TrainConfig(
        selection=arm,  # type: ignore[arg-type]
        steps=args.steps,
        m=args.m,
        n=args.n,
        k=args.k,
        lr=args.lr,
        task_size=POOLS[regime] + args.holdout,
        task_seed=args.task_seed,
        holdout=args.holdout,
        eval_every=args.eval_every,
        eval_samples=args.eval_samples,
        eval_samples_every=args.steps // 2,
        seed=seed,
        output_dir=Path("runs/evidence") / regime / arm / f"seed{seed}",
        progress=False,
        plot=False,
    )
    started = time.perf_counter()
    records = run(cfg)
    at_n = [(r["step"], r["eval_mean_at_n"]) for r in records if "eval_mean_at_n" in r]
    final = next(r for r in reversed(records) if "eval_mean_at_n" in r)
    greedy = [r["eval_accuracy"] for r in records if "eval_accuracy" in r]
    return {
        "regime": regime,
        "arm": arm,
        "seed": seed,
        "final_mean_at_n": final["eval_mean_at_n"],
        "mid_mean_at_n": at_n[0][1] if len(at_n) > 1 else None,
        "mean_at_n_curve": at_n,
        "per_problem": final["eval_mean_at_n_per_problem"],
        "final_greedy": greedy[-1] if greedy else None,
        "mean_effective_ratio": statistics.fmean(r["effective_ratio"] for r in records),
        "rollouts": sum(r["rollouts"] for r in records),
        "train_seconds": sum(r["time_step"] for r in records),
        "wall_seconds": time.perf_counter() - started,
        "pool": POOLS[regime],
        "passes": args.steps
        * args.m
        * (args.k if arm in ("pcl", "random", "dps") else 1)
        / POOLS[regime],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def compare(runs: list[Row], regime: str, arm: str, reference: str) -> Row | None:
    """``arm`` against ``reference`` on the primary endpoint, over the seeds both have."""
    mine = {r["seed"]: r for r in runs if (r["regime"], r["arm"]) == (regime, arm)}
    ref = {r["seed"]: r for r in runs if (r["regime"], r["arm"]) == (regime, reference)}
    seeds = sorted(mine.keys() & ref.keys())
    if not seeds:
        return None
    diffs = paired({s: mine[s][PRIMARY] for s in seeds}, {s: ref[s][PRIMARY] for s in seeds})
    mean, ci = mean_ci95(diffs)
    # Per held-out problem, averaged over the paired seeds: how much of the spread is the
    # evaluation's own sampling noise (it is the same problems for every arm).
    per_problem = [
        statistics.fmean(mine[s]["per_problem"][i] - ref[s]["per_problem"][i] for s in seeds)
        for i in range(len(mine[seeds[0]]["per_problem"]))
    ]
    problem_ci = _normal_ci(per_problem) if len(per_problem) > 1 else None
    return {
        "regime": regime,
        "arm": arm,
        "reference": reference,
        "seeds": len(seeds),
        "mean_diff": mean,
        "ci95": ci,
        "bootstrap_ci95": bootstrap_ci95(diffs),
        "p_improvement": probability_of_improvement(
            [mine[s][PRIMARY] for s in seeds], [ref[s][PRIMARY] for s in seeds]
        ),
        "mde80": minimum_detectable(diffs) if len(diffs) > 1 else None,
        "per_problem_diff": statistics.fmean(per_problem),
        "per_problem_ci95": problem_ci,
        "established": ci is not None and (ci[0] > 0 or ci[1] < 0),
    }


def _normal_ci(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5
    return mean - half, mean + half


def summarise(runs: list[Row]) -> tuple[list[Row], list[Row]]:
    """(one row per regime and arm, one row per comparison against random and uniform)."""
    arms: list[Row] = []
    comparisons: list[Row] = []
    for regime in POOLS:
        names = sorted({r["arm"] for r in runs if r["regime"] == regime})
        for arm in names:
            group = [r for r in runs if (r["regime"], r["arm"]) == (regime, arm)]
            finals = [r[PRIMARY] for r in group]
            arms.append(
                {
                    "regime": regime,
                    "arm": arm,
                    "seeds": sorted(r["seed"] for r in group),
                    "final_mean": statistics.fmean(finals),
                    "final_iqm": iqm(finals),
                    "final_sd": statistics.stdev(finals) if len(finals) > 1 else None,
                    "greedy_mean": _mean([r["final_greedy"] for r in group]),
                    "effective_ratio": statistics.fmean(r["mean_effective_ratio"] for r in group),
                    "train_minutes": statistics.fmean(r["train_seconds"] for r in group) / 60,
                    "passes": group[0]["passes"],
                }
            )
            for reference in ("random", "uniform"):
                if arm == reference or (arm, reference) == ("uniform", "random"):
                    continue  # random − uniform says it once
                if row := compare(runs, regime, arm, reference):
                    comparisons.append(row)
    return arms, comparisons


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", choices=sorted(POOLS), default="cold")
    parser.add_argument("--arms", nargs="+", default=["random", "uniform", "pcl", "dps"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("-m", type=int, default=4)
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--holdout", type=int, default=256)
    parser.add_argument("--eval-samples", type=int, default=4, help="N of mean@N")
    parser.add_argument("--eval-every", type=int, default=12, help="greedy accuracy every N")
    parser.add_argument("--task-seed", type=int, default=0)
    parser.add_argument("--merge", action="store_true", help=f"add to {NAME}.json's runs")
    parser.add_argument("--summary", action="store_true", help="print the saved runs' tables")
    args = parser.parse_args()
    budget = {k: getattr(args, k) for k in BUDGET_KEYS}
    path = RESULTS / f"{NAME}.json"

    if args.summary:
        saved = json.loads(path.read_text())["meta"]["runs"]
    else:
        data = saved_for_merge(NAME, budget, "budget") if args.merge else None
        saved = data["meta"]["runs"] if data else []
        for seed in args.seeds:  # seed-major: an interrupted sweep leaves whole pairs
            for arm in args.arms:
                print(f"training {args.regime} {arm}, seed {seed} …", flush=True)
                new = train_one(args.regime, arm, seed, args)
                key = (args.regime, arm, seed)
                saved = [r for r in saved if (r["regime"], r["arm"], r["seed"]) != key] + [new]
                arms, comparisons = summarise(saved)
                meta = {"budget": budget, "primary": PRIMARY, "pools": POOLS, "runs": saved}
                write_result(NAME, meta | {"comparisons": comparisons}, arms)
    arms, comparisons = summarise(saved)
    print(f"{'regime':<6} {'arm':<18} {'seeds':>5} {'mean@N':>7} {'IQM':>6} {'eff':>5}")
    for a in arms:
        print(
            f"{a['regime']:<6} {a['arm']:<18} {len(a['seeds']):>5} {a['final_mean']:>7.3f} "
            f"{a['final_iqm']:>6.3f} {a['effective_ratio']:>5.2f}"
        )
    for c in comparisons:
        ci = c["ci95"]
        interval = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "(needs 2 seeds)"
        print(
            f"{c['regime']:<6} {c['arm']} − {c['reference']}: {c['mean_diff']:+.3f} {interval} "
            f"over {c['seeds']} seeds"
        )


if __name__ == "__main__":
    main()
