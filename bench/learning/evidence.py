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
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import RESULTS, saved_for_merge, write_result
from _stats import (
    bootstrap_ci95,
    iqm,
    mean_ci95,
    minimum_detectable,
    paired,
    pairs_needed,
    probability_of_improvement,
)

NAME = "evidence"
POOLS = {"cold": 1792, "warm": 96}
"""Training problems per regime (the held-out ones come on top)."""
BUDGET_KEYS = ("steps", "m", "n", "k", "lr", "holdout", "eval_samples", "eval_every", "task_seed")
PRIMARY = "final_mean_at_n"
REFERENCES = ("random", "uniform", "dps", "dynamic_sampling")
"""What each arm is compared with: the placebo first, then uniform draws; PCL also with the
peers (DPS, history-based; DAPO dynamic sampling, rollout-based)."""
PEERS = ("dps", "dynamic_sampling")
ARM_STYLE = {
    "random": ("tab:gray", "--"),
    "uniform": ("tab:red", ":"),
    "pcl": ("tab:orange", "-"),
    "dps": ("tab:blue", "-"),
    "dynamic_sampling": ("tab:green", "-"),
}
"""One colour and line style per arm in every panel; the placebo is a dashed grey line."""
MIN_PAIRS = 5
"""Decision rule, set with the design: a difference is claimed only over at least this many
paired seeds and where its 95 % t-interval excludes zero (with fewer, the spread itself is
a guess)."""
Row = dict[str, Any]


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


def passes(arm: str, budget: Row, rollouts: int, pool: int) -> float:
    """Candidates drawn over the pool's size. Selections that choose among k·m draw k·m a
    step (the trainer's ``DRAWS_K_CANDIDATES``); uniform draws m; dynamic sampling draws m a
    round, as many rounds as it needs, so its draws are its rollouts over n."""
    from sweetspot_trainer.config import DRAWS_K_CANDIDATES

    if arm == "dynamic_sampling":
        return rollouts / budget["n"] / pool
    k = budget["k"] if arm in DRAWS_K_CANDIDATES else 1
    return budget["steps"] * budget["m"] * k / pool


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


def curves(runs: list[Row], baselines: list[Row]) -> list[Row]:
    """Mean@N against training step per (regime, arm): the mean over seeds and its 95 %
    t-interval at each evaluated step; step 0 is the shared baseline (``baseline_one``)."""
    out: list[Row] = []
    for regime in POOLS:
        base = [b["mean_at_n"] for b in baselines if b["regime"] == regime]
        for arm in sorted({r["arm"] for r in runs if r["regime"] == regime}):
            group = [r for r in runs if (r["regime"], r["arm"]) == (regime, arm)]
            by_step: dict[int, list[float]] = {}
            for r in group:
                for step, value in r["mean_at_n_curve"]:
                    by_step.setdefault(step, []).append(value)
            points = [(0, base)] if base else []
            points += sorted(by_step.items())
            out.append(
                {
                    "regime": regime,
                    "arm": arm,
                    "steps": [step for step, _ in points],
                    "mean": [statistics.fmean(values) for _, values in points],
                    "band": [mean_ci95(values)[1] for _, values in points],
                    "seeds": [len(values) for _, values in points],
                }
            )
    return out


def plot(curve_rows: list[Row], path: Path) -> Path | None:
    """One panel per regime: each arm's mean@N curve with its band."""
    if not curve_rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = [regime for regime in POOLS if any(c["regime"] == regime for c in curve_rows)]
    fig, axes = plt.subplots(1, len(regimes), figsize=(5.5 * len(regimes), 4), squeeze=False)
    for ax, regime in zip(axes[0], regimes, strict=True):
        for c in (c for c in curve_rows if c["regime"] == regime):
            seeds = max(c["seeds"])
            color, style = ARM_STYLE.get(c["arm"], (None, "-"))
            name = f"{c['arm']} (placebo)" if c["arm"] == "random" else c["arm"]
            (line,) = ax.plot(
                c["steps"],
                c["mean"],
                marker="o",
                color=color,
                linestyle=style,
                label=f"{name} ({seeds})",
            )
            kept = [(s, b) for s, b in zip(c["steps"], c["band"], strict=True) if b]
            if kept:
                ax.fill_between(
                    [s for s, _ in kept],
                    [b[0] for _, b in kept],
                    [b[1] for _, b in kept],
                    color=line.get_color(),
                    alpha=0.15,
                )
        ax.set_title(f"{regime} pool: held-out mean@N, 95 % band over seeds")
        ax.set_xlabel("training step")
        ax.set_ylabel("mean@N")
        ax.legend(title="arm (seeds)", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def at_seconds(run: Row, seconds: float, start: float | None) -> float | None:
    """The run's held-out mean@N after ``seconds`` of training, read off its evaluated
    steps by linear interpolation (step 0 is ``start``, the untrained policy's mean@N).

    Where the run kept its step times (``step_seconds``) they place each step; older runs
    assume every step took the same time. None where the time falls before the run's first
    evaluation and there is no ``start``.
    """
    curve = [(float(step), value) for step, value in run["mean_at_n_curve"]]
    if seconds >= run["train_seconds"]:
        return curve[-1][1]
    times = run.get("step_seconds")
    if times:  # the fractional step reached after `seconds`
        done, step = 0.0, 0.0
        for t in times:
            if done + t >= seconds:
                step += (seconds - done) / t if t else 0.0
                break
            done, step = done + t, step + 1
    else:
        step = curve[-1][0] * seconds / run["train_seconds"]
    points = ([(0.0, start)] if start is not None else []) + curve
    for (s0, v0), (s1, v1) in itertools.pairwise(points):
        if s0 <= step <= s1:
            return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    return None


def compare(
    runs: list[Row], regime: str, arm: str, reference: str, start: float | None = None
) -> Row | None:
    """``arm`` against ``reference`` on the primary endpoint, over the seeds both have.

    Beside it, a secondary figure: both arms at the same training time (the shorter run's),
    each read off its curve (``at_seconds``; ``start`` is the regime's step-0 mean@N)."""
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
    same_time: list[float] = []
    for s in seeds:
        seconds = min(mine[s]["train_seconds"], ref[s]["train_seconds"])
        a, b = at_seconds(mine[s], seconds, start), at_seconds(ref[s], seconds, start)
        if a is not None and b is not None:
            same_time.append(a - b)
    time_mean, time_ci = mean_ci95(same_time) if same_time else (None, None)
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
        # Paired seeds that would detect the difference seen so far with 80 % power.
        "pairs_for_observed": pairs_needed(diffs, abs(mean)) if mean else None,
        "per_problem_diff": statistics.fmean(per_problem),
        "per_problem_ci95": problem_ci,
        "established": established(len(seeds), ci),
        "train_time_ratio": statistics.fmean(
            mine[s]["train_seconds"] / ref[s]["train_seconds"] for s in seeds
        ),
        # Rollouts generated (extra ones included) over the reference's, paired per seed.
        "rollout_ratio": statistics.fmean(mine[s]["rollouts"] / ref[s]["rollouts"] for s in seeds),
        "equal_time_seeds": len(same_time),
        "equal_time_diff": time_mean,
        "equal_time_ci95": time_ci,
        "equal_time_established": established(len(same_time), time_ci),
    }


def established(pairs: int, ci: tuple[float, float] | None) -> bool:
    """The decision rule: at least ``MIN_PAIRS`` paired seeds and a 95 % interval that
    excludes zero."""
    return pairs >= MIN_PAIRS and ci is not None and (ci[0] > 0 or ci[1] < 0)


def _normal_ci(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5
    return mean - half, mean + half


def summarise(
    runs: list[Row], baselines: list[Row] | None = None, budget: Row | None = None
) -> tuple[list[Row], list[Row]]:
    """(one row per regime and arm, one row per comparison against random and uniform, and
    PCL's against the peers). ``budget`` recomputes ``passes`` from each run's rollouts."""
    arms: list[Row] = []
    comparisons: list[Row] = []
    for regime in POOLS:
        base = [b["mean_at_n"] for b in baselines or [] if b["regime"] == regime]
        start = statistics.fmean(base) if base else None
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
                    "passes": statistics.fmean(
                        passes(arm, budget, r["rollouts"], r["pool"]) if budget else r["passes"]
                        for r in group
                    ),
                    "rollouts": statistics.fmean(r["rollouts"] for r in group),
                }
            )
            for reference in REFERENCES:
                if arm == reference or (arm, reference) == ("uniform", "random"):
                    continue  # random − uniform says it once
                if reference in PEERS and arm != "pcl":
                    continue  # the peers: only the value model is held to them
                if row := compare(runs, regime, arm, reference, start):
                    comparisons.append(row)
    return arms, comparisons


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


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
