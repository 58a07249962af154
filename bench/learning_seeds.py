"""Selection strategies over several seeds, accumulated across sessions.

    .venv/bin/python bench/learning_seeds.py --strategies uniform pcl dps --seeds 0 1 2
    .venv/bin/python bench/learning_seeds.py --strategies dynamic_sampling --seeds 0 --merge

Each (strategy, seed) run trains SmolLM2-135M from the same initial weights on the same
problems (the ground truth's 512 ``chain_sum`` prompts: ``--task-seed 0``) with the same
``--holdout`` prompts held out for greedy evaluation; the seed changes the policy's sampling,
the candidate draws and the value model's initialisation. ``--merge`` adds runs to
bench/results/learning_seeds.json (a run with the same strategy and seed is replaced; runs
with other budget settings are refused, so every row compares like with like).

Per strategy: seeds, final held-out accuracy (mean, standard deviation, min–max), and, per
run, the steps, rollouts and wall time to reach uniform's mean final accuracy (medians over
the runs that reached it, and how many did). The plot shows mean held-out accuracy and
training reward against step with a min–max band. Wall time on a shared machine is noisy:
run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, holdout_truth, load_ground_truth, saved_for_merge, write_result
from _stats import mean_ci95, paired
from learning import strategy_config, summarise

from sweetspot_trainer.train import run

NAME = "learning_seeds"
BUDGET_KEYS = ("steps", "m", "n", "lr", "holdout", "eval_every", "task_seed")
CURVE_KEYS = ("step", "wall", "rollouts", "reward_mean", "effective_ratio", "eval_accuracy")
Row = dict[str, Any]


def train_one(name: str, seed: int, args: argparse.Namespace, truth: dict[str, float]) -> Row:
    folder = Path("runs/learning_seeds") / name / f"seed{seed}"
    cfg = strategy_config(
        name, args, seed=seed, task_size=len(truth), output_dir=folder, task_seed=args.task_seed
    )
    records = run(cfg)
    summary = summarise(name, records, truth)
    curve = [{k: r.get(k) for k in CURVE_KEYS} for r in records]
    return {**summary, "seed": seed, "curve": curve}


def reach(run: Row, target: float) -> dict[str, float] | None:
    """Steps, rollouts and wall seconds at the first evaluation at or above ``target``."""
    spent = 0
    for point in run["curve"]:
        spent += point["rollouts"]
        accuracy = point.get("eval_accuracy")
        if accuracy is not None and accuracy >= target:
            return {"steps": point["step"], "rollouts": spent, "wall": point["wall"]}
    return None


def aggregate(runs: list[Row]) -> list[Row]:
    """One row per strategy, uniform's mean final accuracy as the target."""
    by_name: dict[str, list[Row]] = {}
    for r in runs:
        by_name.setdefault(r["selection"], []).append(r)
    uniform = by_name.get("uniform")
    target = statistics.fmean(r["final_eval_accuracy"] for r in uniform) if uniform else None
    rows = []
    for name, group in by_name.items():
        finals = [r["final_eval_accuracy"] for r in group]
        reached = [x for r in group if target is not None and (x := reach(r, target))]
        row: Row = {
            "selection": name,
            "seeds": sorted(r["seed"] for r in group),
            "final_mean": statistics.fmean(finals),
            "final_sd": statistics.stdev(finals) if len(finals) > 1 else None,
            "final_min": min(finals),
            "final_max": max(finals),
            "wall_mean_s": statistics.fmean(r["wall_seconds"] for r in group),
            "rollouts_mean": statistics.fmean(r["rollouts"] for r in group),
            "effective_ratio_mean": statistics.fmean(r["mean_effective_ratio"] for r in group),
            "target": target,
            "reached": len(reached),
        }
        for key in ("steps", "rollouts", "wall"):
            row[f"to_target_{key}"] = (
                statistics.median(x[key] for x in reached) if reached else None
            )
        row |= paired_difference(group, uniform or [])
        rows.append(row)
    return rows


def paired_difference(group: list[Row], uniform: list[Row]) -> Row:
    """Final accuracy minus uniform's on the same seed (same initial weights and held-out
    prompts): mean over the seeds both have, and a 95 % t-interval when there are 2 to 9."""
    finals = {r["seed"]: r["final_eval_accuracy"] for r in group}
    diffs = paired(finals, {r["seed"]: r["final_eval_accuracy"] for r in uniform})
    mean, ci = mean_ci95(diffs)
    return {"vs_uniform_seeds": len(diffs), "vs_uniform_mean": mean, "vs_uniform_ci95": ci}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["uniform", "pcl", "dps"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("-m", type=int, default=4)
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--holdout", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=8)
    parser.add_argument("--task-seed", type=int, default=0)
    parser.add_argument("--merge", action="store_true", help=f"add to {NAME}.json's runs")
    args = parser.parse_args()
    budget = {k: getattr(args, k) for k in BUDGET_KEYS}

    data = saved_for_merge(NAME, budget, "budget") if args.merge else None
    saved: list[Row] = data["meta"]["runs"] if data else []
    path = RESULTS / f"{NAME}.json"

    truth = {r["id"]: r["p"] for r in load_ground_truth()}
    held_out = holdout_truth(args.holdout, args.task_seed)
    for seed in args.seeds:  # seed-major: an interrupted sweep leaves whole seeds behind
        for name in args.strategies:
            print(f"training {name}, seed {seed} …", flush=True)
            new = train_one(name, seed, args, truth)
            saved = [r for r in saved if (r["selection"], r["seed"]) != (name, seed)] + [new]
            rows = aggregate(saved)
            meta = {"budget": budget, "holdout_truth": held_out, "runs": saved}
            write_result(NAME, meta, rows)  # after every run
    plot(saved, RESULTS / f"{NAME}.png")
    print(f"{'selection':<18} {'seeds':>5} {'final mean':>10} {'sd':>6} {'reached':>8}")
    for row in aggregate(saved):
        sd = f"{row['final_sd']:.3f}" if row["final_sd"] is not None else "-"
        print(
            f"{row['selection']:<18} {len(row['seeds']):>5} {row['final_mean']:>10.3f} "
            f"{sd:>6} {row['reached']:>4}/{len(row['seeds'])}"
        )
    print(f"wrote {path} and .png")


def plot(runs: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    names = sorted({r["selection"] for r in runs})
    for name in names:
        group = [r for r in runs if r["selection"] == name]
        for ax, key in ((axes[0], "eval_accuracy"), (axes[1], "reward_mean")):
            steps = sorted({p["step"] for r in group for p in r["curve"] if p.get(key) is not None})
            values = [
                [
                    p[key]
                    for r in group
                    for p in r["curve"]
                    if p["step"] == s and p.get(key) is not None
                ]
                for s in steps
            ]
            mean = [statistics.fmean(v) for v in values]
            line = ax.plot(steps, mean, marker="o" if key == "eval_accuracy" else ".",
                           label=f"{name} ({len(group)} seeds)")  # fmt: skip
            ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values],
                            alpha=0.15, color=line[0].get_color())  # fmt: skip
    axes[0].set(xlabel="step", ylabel="greedy accuracy", title="Held-out accuracy (mean, min–max)")
    axes[1].set(xlabel="step", ylabel="mean reward of the batch", title="Training reward")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("Selection strategies over seeds (SmolLM2-135M, chain_sum, CPU)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
