"""Ground-truth success rates of the initial policy on the default task pool.

    .venv/bin/python bench/value_model/ground_truth.py [--size 512] [--samples 32] [--seed 0]
        [--task reasoning_gym:leg_counting?max_animals=2 --name leg_counting]

Every prompt of ``make_task("chain_sum", seed, size)`` is answered ``--samples`` times at the
training temperature by the rollout engine (vLLM when installed) and scored by the task's
verifier. Writes bench/data/ground_truth_<task>.jsonl (one row per prompt: id, difficulty,
successes, samples, p) and bench/data/ground_truth_<task>.meta.json (settings, wall time,
core-seconds of the whole machine). The other benchmarks read this table instead of regenerating it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import DATA

from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.tasks import make_task
from sweetspot_trainer.train import load_policy, make_engine, roll_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="chain_sum")
    parser.add_argument(
        "--name", default=None, help="file name part (default: the task spec, made file-safe)"
    )
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=32, help="prompts per generate call")
    parser.add_argument("--engine", default="auto", choices=["auto", "vllm", "transformers"])
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    cfg = TrainConfig(
        model=args.model,
        task=args.task,
        task_size=args.size,
        seed=args.seed,
        engine=args.engine,
        output_dir=Path("runs/ground-truth"),
        selection="uniform",
        vllm_cpu_kv_cache_gib=4,
    )
    task = make_task(args.task, seed=args.seed, size=args.size)
    policy, tokenizer = load_policy(args.model, "cpu")
    start_wall = time.perf_counter()
    engine = make_engine(cfg, policy, tokenizer)
    rows = []
    tokens = 0
    problems = task.problems
    try:
        with tqdm(total=len(problems), desc="ground truth", unit="prompt") as bar:
            for i in range(0, len(problems), args.chunk):
                chunk = problems[i : i + args.chunk]
                groups, chunk_rewards = roll_out(
                    engine,
                    task,
                    chunk,
                    n=args.samples,
                    max_new_tokens=args.max_new_tokens,
                    temperature=args.temperature,
                )  # [chunk][samples]
                for problem, group, rewards in zip(chunk, groups, chunk_rewards, strict=True):
                    tokens += sum(len(r.completion_ids) for r in group)
                    rows.append(
                        {
                            "id": problem.id,
                            "difficulty": problem.difficulty,
                            "prompt": problem.prompt,
                            "answer": problem.answer,
                            "successes": sum(rewards),
                            "samples": len(rewards),
                            "p": statistics.fmean(rewards),
                        }
                    )
                bar.update(len(chunk))
    finally:
        engine.close()
    wall = time.perf_counter() - start_wall

    DATA.mkdir(parents=True, exist_ok=True)
    name = args.name or args.task.replace(":", "_").replace("/", "_")
    table = DATA / f"ground_truth_{name}.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_difficulty: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_difficulty[r["difficulty"]].append(r["p"])
    meta = {
        "command": " ".join(["python", "bench/value_model/ground_truth.py", *sys.argv[1:]]),
        "settings": vars(args),
        "engine": engine.name,
        "wall_seconds": wall,
        # vLLM's worker is a grandchild process, invisible to getrusage: charge the machine.
        "core_seconds": wall * (os.cpu_count() or 1),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "completion_tokens": tokens,
        "tokens_per_second": tokens / wall,
        "mean_p": statistics.fmean(r["p"] for r in rows),
        "by_difficulty": {
            d: {
                "prompts": len(ps),
                "mean_p": statistics.fmean(ps),
                "share_in_0.2_0.8": sum(0.2 <= p <= 0.8 for p in ps) / len(ps),
                "share_zero": sum(p == 0 for p in ps) / len(ps),
            }
            for d, ps in sorted(by_difficulty.items())
        },
    }
    (DATA / f"ground_truth_{name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: v for k, v in meta.items() if k != "settings"}, indent=2))
    print(f"wrote {table}")


if __name__ == "__main__":
    main()
