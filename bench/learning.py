"""Short RL runs of several selection strategies, equal seeds and budgets, side by side.

    .venv/bin/python bench/learning.py [--strategies uniform pcl dynamic_sampling bayes]
        [--steps 24] [-m 4] [-n 8] [--lr 1e-5]
    .venv/bin/python bench/learning.py --strategies pcl:band pcl:weighted --merge

``pcl:<rule>`` runs PCL with another selection rule; ``--merge`` adds runs to the saved ones.

Each strategy trains SmolLM2-135M from the same initial weights on the same pool (the
ground truth's 512 prompts, 64 held out for greedy evaluation every ``--eval-every``
steps), with the same seed. Reported: training reward and held-out accuracy against step
and against wall time, effective ratio, the ground-truth difficulty of the chosen prompts
over time (the curriculum), rollouts spent, and the wall time to reach uniform's final
held-out accuracy. Writes bench/results/learning.{json,png}; each run's metrics.jsonl stays
under runs/learning/<strategy>/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, holdout_truth, load_ground_truth, saved_for_merge, write_result

from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.train import run


def summarise(name: str, records: list[dict[str, Any]], truth: dict[str, float]) -> dict[str, Any]:
    clock = 0.0
    for r in records:
        clock += r["time_step"]
        r["wall"] = clock
        r["true_p_chosen"] = statistics.fmean(truth[i] for i in r["prompt_ids"])
    evals = [(r["step"], r["wall"], r["eval_accuracy"]) for r in records if "eval_accuracy" in r]
    return {
        "selection": name,
        "steps": len(records),
        "wall_seconds": clock,
        "rollouts": sum(r["rollouts"] for r in records),
        "mean_reward": statistics.fmean(r["reward_mean"] for r in records),
        "mean_effective_ratio": statistics.fmean(r["effective_ratio"] for r in records),
        "mean_true_p_chosen": statistics.fmean(r["true_p_chosen"] for r in records),
        "evals": evals,
        "final_eval_accuracy": evals[-1][2] if evals else float("nan"),
    }


def strategy_config(
    name: str,
    args: argparse.Namespace,
    *,
    seed: int,
    task_size: int,
    output_dir: Path,
    task_seed: int | None = None,
) -> TrainConfig:
    """The trainer settings of one run; ``pcl:<rule>`` is PCL with another selection rule.

    PCL's value update is pinned to ``overlapped``, the order every committed seeded run
    used (the trainer's ``auto`` would now block on this CPU), so merged runs stay alike."""
    selection, _, rule = name.partition(":")
    return TrainConfig(
        selection=selection,
        pcl_rule=rule or "nearest",
        value_update="overlapped",
        steps=args.steps,
        m=args.m,
        n=args.n,
        lr=args.lr,
        task_size=task_size,
        task_seed=task_seed,
        holdout=args.holdout,
        eval_every=args.eval_every,
        seed=seed,
        output_dir=output_dir,
        progress=False,
        plot=False,
    )


BUDGET_KEYS = ("steps", "m", "n", "lr", "holdout", "eval_every", "seed")
"""What every merged run must share; each row records when it was measured."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--strategies", nargs="+", default=["uniform", "pcl", "dynamic_sampling", "bayes"]
    )
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("-m", type=int, default=4)
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--holdout", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--merge", action="store_true", help="add to bench/results/learning.json's runs"
    )
    args = parser.parse_args()

    rows = load_ground_truth()
    truth = {r["id"]: r["p"] for r in rows}
    settings = {k: getattr(args, k) for k in BUDGET_KEYS}
    saved = saved_for_merge("learning", settings, "settings") if args.merge else None
    runs: dict[str, list[dict[str, Any]]] = {}
    for name in args.strategies:
        cfg = strategy_config(
            name, args, seed=args.seed, task_size=len(rows), output_dir=Path("runs/learning") / name
        )
        print(f"training with {name} …", flush=True)
        runs[name] = run(cfg)
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    summary = [
        {**summarise(name, records, truth), "measured_at": measured_at}
        for name, records in runs.items()
    ]
    if saved is not None:  # add these runs to the ones already measured
        summary = [r for r in saved["rows"] if r["selection"] not in runs] + summary
        curves_before = {k: v for k, v in saved["meta"]["curves"].items() if k not in runs}
    else:
        curves_before = {}
    target = next((s["final_eval_accuracy"] for s in summary if s["selection"] == "uniform"), None)
    for s in summary:
        reached = [w for _, w, acc in s["evals"] if target is not None and acc >= target]
        s["time_to_uniform_final"] = f"{reached[0] / 60:.1f} min" if reached else "not reached"
    print(f"{'selection':<18} {'wall min':>8} {'rollouts':>8} {'eff':>5} {'true p':>7} {'eval':>6}")
    for s in summary:
        print(
            f"{s['selection']:<18} {s['wall_seconds'] / 60:>8.1f} {s['rollouts']:>8} "
            f"{s['mean_effective_ratio']:>5.2f} {s['mean_true_p_chosen']:>7.3f} "
            f"{s['final_eval_accuracy']:>6.3f}  to uniform's final: {s['time_to_uniform_final']}"
        )
    budget = (
        f"{len(summary)} runs (one per strategy) × {args.steps} steps, m={args.m}, "
        f"n={args.n}, lr={args.lr}, "
        f"SmolLM2-135M on 2 CPU cores with vLLM rollouts, {args.holdout} held-out prompts "
        f"evaluated greedily every {args.eval_every} steps, seed {args.seed}."
    )
    curves = curves_before | {
        name: [
            {
                k: r.get(k)
                for k in (
                    "step",
                    "wall",
                    "reward_mean",
                    "effective_ratio",
                    "true_p_chosen",
                    "eval_accuracy",
                )
            }
            for r in records
        ]
        for name, records in runs.items()
    }
    held_out = holdout_truth(args.holdout, args.seed)
    meta = {"settings": settings, "budget": budget, "holdout_truth": held_out, "curves": curves}
    write_result("learning", meta, summary)
    plot(curves, RESULTS / "learning.png")
    print(f"wrote {RESULTS / 'learning.json'} and .png")


def plot(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    for name, recs in curves.items():
        steps = [r["step"] for r in recs]
        evals = [r for r in recs if r.get("eval_accuracy") is not None]
        axes[0][0].plot(steps, [r["reward_mean"] for r in recs], marker=".", label=name)
        axes[0][1].plot(
            [r["wall"] / 60 for r in evals],
            [r["eval_accuracy"] for r in evals],
            marker="o",
            label=name,
        )
        axes[1][0].plot(steps, [r["effective_ratio"] for r in recs], marker=".", label=name)
        axes[1][1].plot(steps, [r["true_p_chosen"] for r in recs], marker=".", label=name)
    axes[0][0].set(xlabel="step", ylabel="mean reward of the batch", title="Training reward")
    axes[0][1].set(
        xlabel="wall time (min)", ylabel="greedy accuracy", title="Held-out accuracy vs wall time"
    )
    axes[1][0].set(xlabel="step", ylabel="groups with reward variance", title="Effective ratio")
    axes[1][1].set(
        xlabel="step", ylabel="mean true p (initial policy)", title="Curriculum: chosen difficulty"
    )
    for ax in axes.flat:
        ax.legend(fontsize=8)
    fig.suptitle("Selection strategies, equal budgets (SmolLM2-135M, chain_sum, CPU)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
