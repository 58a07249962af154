"""The placebo-controlled benchmark's analysis (evidence.py runs it): the curves over steps,
the paired comparisons with their decision rule, the arms' summaries and the plot. Pure
functions of the saved runs, so ``evidence.py --summary`` and the tests re-derive everything.
"""

from __future__ import annotations

import itertools
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _stats import (
    bootstrap_ci95,
    iqm,
    mean_ci95,
    minimum_detectable,
    paired,
    pairs_needed,
    probability_of_improvement,
)

POOLS = {"cold": 1792, "warm": 96}
"""Training problems per regime (the held-out ones come on top)."""
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


def passes(arm: str, budget: Row, rollouts: int, pool: int) -> float:
    """Candidates drawn over the pool's size. Selections that choose among k·m draw k·m a
    step (the trainer's ``DRAWS_K_CANDIDATES``); uniform draws m; dynamic sampling draws m a
    round, as many rounds as it needs, so its draws are its rollouts over n."""
    from sweetspot_trainer.config import DRAWS_K_CANDIDATES

    if arm == "dynamic_sampling":
        return rollouts / budget["n"] / pool
    k = budget["k"] if arm in DRAWS_K_CANDIDATES else 1
    return budget["steps"] * budget["m"] * k / pool


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
