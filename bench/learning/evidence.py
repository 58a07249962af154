"""Does choosing prompts by the value model train faster than chance? A placebo-controlled
learning benchmark over paired seeds, in two pool regimes, accumulated across sessions.

    .venv/bin/python bench/learning/evidence.py --regime cold --arms random uniform pcl dps
        --seeds 0 1
    .venv/bin/python bench/learning/evidence.py --regime warm --arms random pcl --seeds 0 --merge
    .venv/bin/python bench/learning/evidence.py --summary          # tables from the saved runs only

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
against the placebo, then against uniform (PCL also against DPS). Secondary: mean@N at the
midpoint, greedy accuracy, effective ratio, wall time (noisy on a shared machine). Each
(regime, arm, seed) run is saved to bench/results/evidence.json as soon as it ends
(``--merge`` adds to the file; runs of another budget are refused).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import RESULTS, saved_for_merge, write_result
from evidence_analysis import (
    MIN_PAIRS,
    POOLS,
    PRIMARY,
    Row,
    curves,
    passes,
    plot,
    summarise,
)

NAME = "evidence"
BUDGET_KEYS = ("steps", "m", "n", "k", "lr", "holdout", "eval_samples", "eval_every", "task_seed")


def config(regime: str, arm: str, seed: int, args: argparse.Namespace) -> Any:
    """The trainer's configuration for one (regime, arm, seed) run at ``args``' budget."""
    from sweetspot_trainer.config import TrainConfig

    return TrainConfig(
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


def train_one(regime: str, arm: str, seed: int, args: argparse.Namespace) -> Row:
    from sweetspot_trainer.train import run, vllm_in_process

    cfg = config(regime, arm, seed, args)
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
        "step_seconds": [r["time_step"] for r in records],
        "generate_seconds": sum(r["time_generate"] for r in records),
        "update_seconds": sum(r["time_update"] for r in records),
        "wall_seconds": time.perf_counter() - started,
        "pool": POOLS[regime],
        "passes": passes(arm, vars(args), sum(r["rollouts"] for r in records), POOLS[regime]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # Speed only (bench/speed/vllm_cpu_layout.py): runs before 2026-12-05 22:10 had vLLM in
        # its own processes; the samples' distribution is the same either way.
        "vllm_in_process": vllm_in_process(cfg.vllm_layout, cfg.device),
    }


def baseline_one(regime: str, seed: int, args: argparse.Namespace) -> Row:
    """Step 0: the untrained policy's held-out mean@N, through the trainer's own setup and
    evaluation (same task split, engine and sampling seed as a run of ``seed``). Every arm
    starts from it, so it is measured once per (regime, seed), not per arm."""
    from sweetspot_trainer.train import evaluate_mean_at_n, start_run

    cfg = config(regime, "uniform", seed, args)
    task, _, holdout, _, _, engine = start_run(cfg)
    try:
        per_problem = evaluate_mean_at_n(
            engine, task, holdout, cfg.eval_samples, cfg.max_new_tokens, cfg.temperature
        )
    finally:
        engine.close()
    return {
        "regime": regime,
        "seed": seed,
        "mean_at_n": statistics.fmean(per_problem),
        "per_problem": per_problem,
        "engine": engine.name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save(saved: list[Row], baselines: list[Row], budget: Row) -> None:
    """Write evidence.json (every run, every baseline, the summaries) and evidence.png."""
    arms, comparisons = summarise(saved, baselines, budget)
    curve_rows = curves(saved, baselines)
    meta = {"budget": budget, "primary": PRIMARY, "min_pairs": MIN_PAIRS, "pools": POOLS}
    meta |= {
        "runs": saved,
        "baselines": baselines,
        "comparisons": comparisons,
        "curves": curve_rows,
    }
    write_result(NAME, meta, arms)
    plot(curve_rows, RESULTS / f"{NAME}.png")


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
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="measure step 0 (the untrained policy's mean@N) for --regime and --seeds instead",
    )
    args = parser.parse_args()
    budget = {k: getattr(args, k) for k in BUDGET_KEYS}
    path = RESULTS / f"{NAME}.json"

    if args.summary:
        meta = json.loads(path.read_text())["meta"]
        saved, baselines = meta["runs"], meta.get("baselines", [])
        save(saved, baselines, meta["budget"])  # tables, curves and plot from the saved runs
    else:
        data = saved_for_merge(NAME, budget, "budget") if args.merge else None
        saved = data["meta"]["runs"] if data else []
        baselines = data["meta"].get("baselines", []) if data else []
        for seed in args.seeds:  # seed-major: an interrupted sweep leaves whole pairs
            if args.baseline:
                print(f"{args.regime} step 0, seed {seed} …", flush=True)
                baselines = [
                    b for b in baselines if (b["regime"], b["seed"]) != (args.regime, seed)
                ] + [baseline_one(args.regime, seed, args)]
                save(saved, baselines, budget)
                continue
            for arm in args.arms:
                print(f"{args.regime} {arm}, seed {seed} …", flush=True)
                new = train_one(args.regime, arm, seed, args)
                key = (args.regime, arm, seed)
                saved = [r for r in saved if (r["regime"], r["arm"], r["seed"]) != key] + [new]
                save(saved, baselines, budget)
    arms, comparisons = summarise(saved, baselines, budget)
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
