"""The last results of the retired learning benchmarks (bench/learning.py and
bench/learning_seeds.py, superseded by evidence.py; see the changelog of docs/results.md),
rendered from their JSON under the archive heading.
"""

from __future__ import annotations

from typing import Any

from _render import Result, Results, cells, fmt, section, table
from _stats import mean_ci95, paired


@section("learning", "learning", archived=True)
def learning(data: Result, results: Results) -> str:
    rows = cells(
        [{**r, "wall_minutes": r["wall_seconds"] / 60} for r in data["rows"]],
        "{selection} | {steps} | {wall_minutes:.1f} | {rollouts} | {mean_effective_ratio:.2f} | "
        "{final_eval_accuracy:.3f} | {time_to_uniform_final}",
    )
    held = data["meta"].get("holdout_truth")
    hardness = (
        f" The held-out prompts' mean ground-truth p is {held['mean_p']:.3f} "
        f"({held['share_p_at_least_0_1']:.0%} of them at p ≥ 0.1)."
        if held
        else ""
    )
    return (
        "**3. Learning, one seed** (`bench/learning.py`, retired): "
        + data["meta"]["budget"]
        + hardness
        + " One seed cannot separate the strategies: 3b below repeats the main ones over "
        "seeds on a larger held-out set.\n\n"
        + table(
            [
                "selection",
                "steps",
                "wall min",
                "rollouts",
                "mean eff",
                "final eval",
                "time to uniform's final",
            ],
            rows,
        )
        + "\n\n![learning](bench/results/learning.png)"
    )


def _versus_uniform(row: dict[str, Any]) -> str:
    if row["selection"] == "uniform" or row.get("vs_uniform_mean") is None:
        return "–"
    text = f"{row['vs_uniform_mean']:+.3f}"
    if row.get("vs_uniform_ci95"):
        low, high = row["vs_uniform_ci95"]
        text += f" ({low:+.3f} to {high:+.3f})"
    seeds = row["vs_uniform_seeds"]
    return f"{text}, {seeds} seed{'s' if seeds != 1 else ''}"


@section("learning_seeds", "learning over seeds", archived=True)
def learning_seeds(data: Result, results: Results) -> str:
    b = data["meta"]["budget"]

    rows = [
        [
            r["selection"],
            str(len(r["seeds"])),
            f"{r['final_mean']:.3f}",
            fmt(r["final_sd"]),
            f"{r['final_min']:.3f}–{r['final_max']:.3f}",
            f"{r['rollouts_mean']:.0f}",
            f"{r['wall_mean_s'] / 60:.1f}",
            f"{r['reached']}/{len(r['seeds'])}",
            fmt(r["to_target_steps"], ".0f"),
            fmt(r["to_target_rollouts"], ".0f"),
            fmt(None if r["to_target_wall"] is None else r["to_target_wall"] / 60, ".1f"),
            _versus_uniform(r),
        ]
        for r in data["rows"]
    ]
    target = data["rows"][0]["target"]
    held = data["meta"].get("holdout_truth")
    hardness = (
        f" Their mean ground-truth p is {held['mean_p']:.3f} ({held['share_p_at_least_0_1']:.0%} "
        f"at p ≥ 0.1, {held['share_p_zero']:.0%} never solved in the ground truth's samples): "
        "harder than table 3's 64, which are the first 64 of these, so the two tables' "
        "accuracies do not compare."
        if held
        else ""
    )
    return (
        "**3b. Learning over seeds** (`bench/learning_seeds.py`, retired; accumulated with "
        f"`--merge`): SmolLM2-135M, {b['steps']} steps, m={b['m']}, n={b['n']}, lr={b['lr']}, "
        f"the same {b['holdout']} held-out prompts for every run (evaluated greedily every "
        f"{b['eval_every']} steps), PCL's value update overlapped with the policy update. "
        "Target: uniform's mean final accuracy "
        f"({fmt(target)}); the *to target* columns are medians over the runs that reached it. "
        "*vs uniform*: final accuracy minus uniform's on the same seed, mean and 95 % "
        f"t-interval over the paired seeds.{hardness}\n\n"
        + table(
            [
                "selection",
                "seeds",
                "final mean",
                "sd",
                "min–max",
                "rollouts",
                "wall min",
                "reached target",
                "steps to target",
                "rollouts to target",
                "min to target",
                "vs uniform (95 % CI)",
            ],
            rows,
        )
        + "\n\n![learning over seeds](bench/results/learning_seeds.png)"
        + _learning_conclusion(data)
    )


def _learning_conclusion(data: dict[str, Any]) -> str:
    """PCL against uniform, DPS and DAPO: paired by seed, said plainly with its uncertainty."""
    finals: dict[str, dict[int, float]] = {}
    for run in data["meta"]["runs"]:
        finals.setdefault(run["selection"], {})[run["seed"]] = run["final_eval_accuracy"]
    if "pcl" not in finals:
        return ""
    held = data["meta"]["budget"]["holdout"]
    lines = []
    for other in ("uniform", "dps", "dynamic_sampling"):
        diffs = paired(finals["pcl"], finals.get(other, {}))
        mean, ci = mean_ci95(diffs)
        if mean is None:
            continue
        wins = sum(d > 0 for d in diffs)
        text = (
            f"PCL − {other}: {mean:+.3f} held-out accuracy ({mean * held:+.1f} of {held} "
            f"prompts) over {len(diffs)} paired seeds, PCL ahead on {wins} of them"
        )
        if ci is None:
            lines.append(text + "; one seed gives no interval, so no verdict.")
            continue
        verdict = (
            ": PCL is better."
            if ci[0] > 0
            else ": PCL is worse."
            if ci[1] < 0
            else " includes 0: at this budget and number of seeds the difference is not "
            "established."
        )
        lines.append(text + f"; 95 % interval {ci[0]:+.3f} to {ci[1]:+.3f}{verdict}")
    walls = {r["selection"]: r["wall_mean_s"] for r in data["rows"]}
    if "uniform" in walls:
        lines.append(
            "Wall time per run against uniform's "
            f"{walls['uniform'] / 60:.1f} min: "
            + ", ".join(
                f"{name} {wall / walls['uniform']:.2f}×"
                for name, wall in walls.items()
                if name != "uniform"
            )
            + " (PCL's value model trains on the same 2 cores as the policy here; see the "
            "step-time split below)."
        )
    return "\n\nConclusion (generated from the runs above):\n\n" + "\n".join(
        f"- {line}" for line in lines
    )
