"""Does the value model keep up with a moving policy? Its online error over a real PCL run.

    .venv/bin/python bench/value_model/drift.py [--arms head:ridge head:sgd full] [--steps 24]

Each arm is one ``sweetspot-train`` PCL run (SmolLM2-135M, chain_sum, m=4, n=8, the same seed
and pool, value update ``blocking`` so every selection sees every report) with the embedded
service's value model set to the arm: ``head:ridge`` (the replay fit, the default),
``head:sgd`` (one AdamW step per update: head mode before the replay), ``full`` (the
fine-tuned backbone). Every step records p̂ of the chosen prompts at selection and their
observed mean reward; a prompt is *first seen* when no earlier step chose it. Over a sliding
window of the last ``--window`` steps' first-seen prompts: MAE and Spearman of p̂ against
the observed mean (what ``GET /v1/runs/{name}/calibration`` reports for the cohort, per step
instead of once), and the effective ratio. Writes bench/results/drift.{json,png}; the runs
stay under runs/drift/<arm>/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import RESULTS, spearman, write_result

from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.train import run


def curves(records: list[dict[str, Any]], window: int) -> dict[str, list[float | None]]:
    """Per step: first-seen MAE and Spearman over the last ``window`` steps, effective ratio."""
    seen: set[str] = set()
    points: list[tuple[int, float, float]] = []  # (step, p̂, observed) of first-seen prompts
    out: dict[str, list[float | None]] = {"step": [], "mae": [], "spearman": [], "eff": []}
    for r in records:
        for pid, p_hat, observed in zip(
            r["prompt_ids"], r["predicted"], r["observed"], strict=True
        ):
            if pid not in seen:
                points.append((r["step"], p_hat, observed))
            seen.add(pid)
        recent = [(p, o) for step, p, o in points if step > r["step"] - window]
        out["step"].append(r["step"])
        out["mae"].append(statistics.fmean(abs(p - o) for p, o in recent) if recent else None)
        out["spearman"].append(
            spearman([p for p, _ in recent], [o for _, o in recent]) if len(recent) > 2 else None
        )
        out["eff"].append(r["effective_ratio"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["head:ridge", "head:sgd", "full"])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("-m", type=int, default=4)
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("--window", type=int, default=8, help="steps per sliding window")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for arm in args.arms:
        mode, _, fit = arm.partition(":")
        out = Path("runs/drift") / arm.replace(":", "-")
        cfg = TrainConfig(
            selection="pcl",
            service_train_mode=mode,  # type: ignore[arg-type]
            service_head_fit=fit or "ridge",  # type: ignore[arg-type]
            value_update="blocking",
            steps=args.steps,
            m=args.m,
            n=args.n,
            seed=args.seed,
            output_dir=out,
            progress=False,
            plot=False,
        )
        run(cfg)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        series = curves(records, args.window)
        rows.append(
            {
                "arm": arm,
                **series,
                "final_mae": series["mae"][-1],
                "final_spearman": series["spearman"][-1],
                "mean_eff": statistics.fmean(r["effective_ratio"] for r in records),
                "minutes": sum(r["time_step"] for r in records) / 60,
            }
        )
    print(f"{'arm':<12} {'MAE (last window)':>18} {'Spearman':>9} {'mean eff':>9} {'min':>6}")
    for r in rows:
        rho = r["final_spearman"] if r["final_spearman"] is not None else float("nan")
        print(
            f"{r['arm']:<12} {r['final_mae']:>18.3f} {rho:>9.3f} "
            f"{r['mean_eff']:>9.2f} {r['minutes']:>6.1f}"
        )
    path = write_result("drift", {"settings": vars(args)}, rows)
    plot(rows, RESULTS / "drift.png", args.window)
    print(f"wrote {path} and drift.png")


def plot(rows: list[dict[str, Any]], path: Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for r in rows:
        axes[0].plot(r["step"], r["mae"], marker=".", label=r["arm"])
        axes[1].plot(r["step"], r["spearman"], marker=".", label=r["arm"])
    axes[0].set(xlabel="step", ylabel="MAE", title=f"First-seen MAE, last {window} steps")
    axes[1].set(
        xlabel="step", ylabel="Spearman ρ", title=f"First-seen Spearman, last {window} steps"
    )
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("Value model during a PCL run (SmolLM2-135M on chain_sum)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
