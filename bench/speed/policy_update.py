"""The trainer's GRPO policy update in float32 and under bf16 autocast, paired in one run.

    .venv/bin/python bench/speed/policy_update.py [--rounds 4] [--rollouts 32]

Speed: two worker processes (``_update_worker.py``, both with the trainer's default
allocator) alternate float32, bf16, float32, ... updates of SmolLM2-135M on the same
synthetic rollouts; each bf16 update is compared with the float32 updates around it.
Agreement: in this process, from the same weights and rollouts, the gradient of one GRPO
step in float32 and under bf16 autocast (cosine similarity, relative norm difference) and
the largest difference in the completion tokens' log-probabilities. Writes
bench/results/policy_update.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import write_result
from _update_worker import UpdateWorkers, synthetic_rollouts

from sweetspot_service.allocator import keep_freed_memory
from sweetspot_service.backbone import resolve_dtype
from sweetspot_trainer.policy import UpdateOptions, build_batch, grpo_update, sequence_logprobs
from sweetspot_trainer.train import load_policy


def agreement(rollouts: int) -> dict[str, float]:
    """Gradient and log-prob agreement of bf16 autocast with float32, same weights."""
    policy, _ = load_policy("smollm2", "cpu")
    batch, advantages = synthetic_rollouts(rollouts, seed=1)
    grads = []
    for dtype in (None, torch.bfloat16):
        policy.zero_grad(set_to_none=True)
        sgd = torch.optim.SGD(policy.parameters(), lr=0.0)  # keeps the gradient, moves nothing
        options = UpdateOptions(grad_clip=1e12, autocast_dtype=dtype)
        grpo_update(policy, sgd, batch, advantages, options, pad_id=0)
        grads.append(
            torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
        )
    exact, mixed = grads
    seq = build_batch(batch, pad_id=0)
    with torch.no_grad():
        lp32 = sequence_logprobs(policy, seq)
        lp16 = sequence_logprobs(policy, seq, torch.bfloat16)
    mask = seq.loss_mask.bool()
    return {
        "gradient_cosine": float(
            torch.nn.functional.cosine_similarity(exact.double(), mixed.double(), dim=0)
        ),
        "gradient_norm_rel_diff": float((mixed.norm() - exact.norm()).abs() / exact.norm()),
        "logprob_max_abs_diff": float((lp32 - lp16).abs()[mask].max()),
        "logprob_mean_abs_diff": float((lp32 - lp16).abs()[mask].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="paired rounds")
    parser.add_argument("--rollouts", type=int, default=32, help="rollouts per update")
    parser.add_argument("--agreement-rollouts", type=int, default=8)
    args = parser.parse_args()

    keep_freed_memory()  # as the trainer does
    checks = agreement(args.agreement_rollouts)
    workers = UpdateWorkers({"float32": ("kept", "fp32"), "bf16": ("kept", "bf16")}, args.rollouts)
    try:
        samples, speedups = workers.paired("float32", "bf16", args.rounds)
    finally:
        workers.close()
    rows: list[dict[str, Any]] = [
        {
            "precision": name,
            "updates": len(xs),
            "seconds_per_update": statistics.fmean(x["seconds"] for x in xs),
            "peak_rss_mb": max(x["VmHWM"] for x in xs) / 1024,
        }
        for name, xs in samples.items()
    ]
    rows[1]["speedup"] = statistics.median(speedups)
    rows[1]["round_speedups"] = speedups
    rows[1].update(checks)
    print(f"GRPO policy update, SmolLM2-135M, {args.rollouts} rollouts, {args.rounds} rounds")
    for r in rows:
        print(
            f"{r['precision']:<8} {r['seconds_per_update']:>7.2f} s/update  "
            f"peak RSS {r['peak_rss_mb']:>6.0f} MB  speedup {r.get('speedup', 1.0):.2f}"
        )
    print(
        f"bf16 vs float32, same weights: gradient cosine {checks['gradient_cosine']:.4f}, "
        f"norm differs by {100 * checks['gradient_norm_rel_diff']:.2f} %, token log-prob "
        f"|diff| max {checks['logprob_max_abs_diff']:.3f} "
        f"mean {checks['logprob_mean_abs_diff']:.4f}"
    )
    meta = {
        "model": "smollm2",
        "rollouts": args.rollouts,
        "rounds": args.rounds,
        "agreement_rollouts": args.agreement_rollouts,
        "bf16_native": resolve_dtype("auto", "cpu") == torch.bfloat16,
        "torch_threads": torch.get_num_threads(),
    }
    print(f"wrote {write_result('policy_update', meta, rows)}")


if __name__ == "__main__":
    main()
