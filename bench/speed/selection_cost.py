"""What choosing prompts costs next to what rolling them out costs, in one run.

    .venv/bin/python bench/speed/selection_cost.py [--shapes 4x8 8x8 16x16] [--k 4]

For each m×n: the value model scores k·m fresh candidates (bare ``ValueModel.predict``,
no embedding cache, the service's dtype), then the rollout engine (vLLM when installed)
samples n answers for m of them at the training settings. The ratio is the share of a
step's generation time that PCL adds to pick its prompts. Writes
bench/results/selection_cost.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import write_result

from sweetspot_service.backbone import Backbone
from sweetspot_service.value_model import ValueModel
from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.tasks import make_task
from sweetspot_trainer.train import load_policy, make_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["4x8", "8x8", "16x16"], help="m x n")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--backbone", default="smollm2")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes]
    need = sum(args.k * m * args.repeats for m, _ in shapes)
    prompts = [p.prompt for p in make_task("chain_sum", seed=11, size=need).problems]
    value = ValueModel(Backbone.load(args.backbone), embedding_cache_size=0)
    value.predict(prompts[:8])  # warm-up
    cfg = TrainConfig(output_dir=Path("runs/selection-cost"), selection="uniform", task_size=need)
    torch.manual_seed(0)
    policy, tokenizer = load_policy(cfg.model, "cpu")
    engine = make_engine(cfg, policy, tokenizer)
    rows = []
    cursor = 0
    try:
        engine.generate(prompts[:2], n=2, max_new_tokens=8, temperature=1.0)  # warm-up
        for m, n in shapes:
            score_s, rollout_s, tokens = [], [], []
            for _ in range(args.repeats):
                candidates = prompts[cursor : cursor + args.k * m]
                cursor += args.k * m
                start = time.perf_counter()
                value.predict(candidates)
                score_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                groups = engine.generate(
                    candidates[:m],
                    n=n,
                    max_new_tokens=args.max_new_tokens,
                    temperature=cfg.temperature,
                )
                rollout_s.append(time.perf_counter() - start)
                tokens.append(sum(len(r.completion_ids) for g in groups for r in g))
            score, rollout = statistics.median(score_s), statistics.median(rollout_s)
            rows.append(
                {
                    "m": m,
                    "n": n,
                    "k": args.k,
                    "candidates": args.k * m,
                    "score_seconds": score,
                    "rollout_seconds": rollout,
                    "rollout_tokens": statistics.fmean(tokens),
                    "selection_over_rollout": score / rollout,
                }
            )
    finally:
        engine.close()
    print(f"engine {engine.name}, value backbone {args.backbone}, k={args.k}")
    print(f"{'m×n':>6} {'cands':>6} {'score s':>8} {'rollout s':>10} {'tokens':>7} {'ratio':>7}")
    for r in rows:
        print(
            f"{r['m']:>3}×{r['n']:<2} {r['candidates']:>6} {r['score_seconds']:>8.3f} "
            f"{r['rollout_seconds']:>10.2f} {r['rollout_tokens']:>7.0f} "
            f"{r['selection_over_rollout']:>7.3f}"
        )
    meta = {"engine": engine.name, "backbone": args.backbone, "device": "cpu"}
    print(f"wrote {write_result('selection_cost', meta, rows)}")


if __name__ == "__main__":
    main()
