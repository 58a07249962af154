"""Why p ≈ 0.5: effective ratio and policy-gradient norm per prompt, by true difficulty.

    .venv/bin/python bench/learning/why_half.py [--per-bucket 8] [--n 8]

Prompts of the ground-truth table are bucketed by their true success rate p. For each
prompt: n fresh rollouts of the initial policy (the ground truth's policy), the GRPO
advantages, and the norm of the gradient one GRPO step would take (the paper's first
finding: both peak at intermediate p). Writes bench/results/why_half.{json,png}.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import RESULTS, load_ground_truth, write_result
from tqdm import tqdm

from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.grpo import group_advantages
from sweetspot_trainer.policy import UpdateOptions, grpo_update
from sweetspot_trainer.tasks import make_task
from sweetspot_trainer.train import load_policy, make_engine, roll_out

BUCKETS = [(0.0, 0.0), (0.01, 0.1), (0.1, 0.2), (0.2, 0.35), (0.35, 0.65), (0.65, 0.99), (1.0, 1.0)]


def bucket_of(p: float) -> tuple[float, float] | None:
    for lo, hi in BUCKETS:
        if lo <= p <= hi:
            return lo, hi
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-bucket", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = load_ground_truth()
    task = make_task("chain_sum", seed=0, size=len(rows))
    problems = {p.id: p for p in task.problems}
    rng = random.Random(args.seed)
    picked: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for row in rng.sample(rows, len(rows)):
        b = bucket_of(row["p"])
        if b is not None and len(picked.setdefault(b, [])) < args.per_bucket:
            picked[b].append(row)

    torch.manual_seed(args.seed)
    cfg = TrainConfig(output_dir=Path("runs/why-half"), selection="uniform")
    policy, tokenizer = load_policy(cfg.model, "cpu")
    engine = make_engine(cfg, policy, tokenizer)
    frozen = torch.optim.SGD(policy.parameters(), lr=0.0)  # measures, never moves the policy
    options = UpdateOptions(grad_clip=1e12, micro_batch_size=8)
    per_prompt: list[dict[str, Any]] = []
    try:
        chosen = [(b, r) for b in BUCKETS if b in picked for r in picked[b]]
        for b, row in tqdm(chosen, desc="prompts"):
            problem = problems[row["id"]]
            (group,), observed = roll_out(
                engine,
                task,
                [problem],
                n=args.n,
                max_new_tokens=args.max_new_tokens,
                temperature=cfg.temperature,
            )
            rewards = torch.tensor(observed)  # [1, n]
            stats = grpo_update(
                policy,
                frozen,
                group,
                group_advantages(rewards).flatten(),
                options,
                pad_id=int(tokenizer.pad_token_id),
            )
            per_prompt.append(
                {
                    "bucket": f"{b[0]:.2f}–{b[1]:.2f}",
                    "true_p": row["p"],
                    "observed_mean": float(rewards.mean()),
                    "effective": float(rewards.max() > rewards.min()),
                    "grad_norm": stats["grad_norm"],
                }
            )
    finally:
        engine.close()

    summary = []
    for b in BUCKETS:
        label = f"{b[0]:.2f}–{b[1]:.2f}"
        items = [r for r in per_prompt if r["bucket"] == label]
        if not items:
            continue
        summary.append(
            {
                "bucket": label,
                "prompts": len(items),
                "mean_true_p": statistics.fmean(r["true_p"] for r in items),
                "effective_ratio": statistics.fmean(r["effective"] for r in items),
                "mean_grad_norm": statistics.fmean(r["grad_norm"] for r in items),
                "pool_share": sum(bucket_of(r["p"]) == b for r in rows) / len(rows),
            }
        )
    print(f"{'true p':<12} {'prompts':>7} {'pool %':>7} {'eff ratio':>9} {'|grad|':>8}")
    for s in summary:
        print(
            f"{s['bucket']:<12} {s['prompts']:>7} {100 * s['pool_share']:>7.1f} "
            f"{s['effective_ratio']:>9.2f} {s['mean_grad_norm']:>8.3f}"
        )
    meta = {"settings": vars(args), "engine": engine.name, "per_prompt": per_prompt}
    print(f"wrote {write_result('why_half', meta, summary)}")
    plot(summary, RESULTS / "why_half.png", args.n)


def plot(summary: list[dict[str, Any]], path: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [s["mean_true_p"] for s in summary]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    ax.plot(x, [s["effective_ratio"] for s in summary], marker="o", label="effective ratio")
    grid = [i / 100 for i in range(101)]
    ax.plot(
        grid, [1 - p**n - (1 - p) ** n for p in grid], ":", color="gray", label=f"1−p^{n}−(1−p)^{n}"
    )
    ax.set(xlabel="true success rate p (ground truth)", ylabel="share of groups with signal")
    ax.set_ylim(0, 1.05)
    twin = ax.twinx()
    twin.plot(x, [s["mean_grad_norm"] for s in summary], marker="s", color="tab:red", label="‖∇‖")
    twin.set_ylabel("policy-gradient norm per prompt", color="tab:red")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    ax.set_title("Learning signal by prompt difficulty (SmolLM2-135M, chain_sum)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
