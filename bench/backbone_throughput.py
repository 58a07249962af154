"""Scoring throughput of each value-model backbone on this machine (bare model, no HTTP).

    .venv/bin/python bench/backbone_throughput.py [--prompts 256] [--repeats 3]

Prompts come from the default training task, so lengths are what PCL scores in practice.
Writes bench/results/backbone_throughput.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from sweetspot_service.backbone import Backbone
from sweetspot_service.value_model import ValueModel
from sweetspot_trainer.tasks import make_task

RESULTS = Path(__file__).parent / "results"


def measure(backbone: str, prompts: list[str], repeats: int) -> dict[str, object]:
    start = time.perf_counter()
    model = ValueModel(Backbone.load(backbone), embedding_cache_size=0)
    load_s = time.perf_counter() - start
    model.predict(prompts[:8])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(prompts)
        times.append(time.perf_counter() - start)
    tokens = sum(len(ids) for ids in model.backbone.tokenizer(prompts)["input_ids"])
    best = min(times)
    return {
        "backbone": backbone,
        "load_s": load_s,
        "prompts": len(prompts),
        "mean_tokens": tokens / len(prompts),
        "seconds_best": best,
        "seconds_median": statistics.median(times),
        "prompts_per_s": len(prompts) / best,
        "tokens_per_s": tokens / best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backbones", nargs="+", default=["smollm2", "minilm"])
    args = parser.parse_args()
    prompts = [p.prompt for p in make_task("chain_sum", seed=0, size=args.prompts).problems]
    rows = [measure(b, prompts, args.repeats) for b in args.backbones]
    print(f"{'backbone':<10} {'load s':>7} {'tokens':>7} {'prompts/s':>10} {'tokens/s':>9}")
    for r in rows:
        print(
            f"{r['backbone']:<10} {r['load_s']:>7.2f} {r['mean_tokens']:>7.1f} "
            f"{r['prompts_per_s']:>10.1f} {r['tokens_per_s']:>9.0f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "backbone_throughput.json"
    meta = {
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
