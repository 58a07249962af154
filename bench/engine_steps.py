"""One PCL step split into selection, generation, update and weight sync, per rollout engine.

    .venv/bin/python bench/engine_steps.py [--steps 6] [-m 4] [-n 8]

Runs the demo's configuration (SmolLM2-135M, PCL through an embedded service, m×n) once
with each engine, same seed, and reports the mean time of each part over the steps after
the first (which pays warm-up). Writes bench/results/engine_steps.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.train import run

PARTS = ("time_select", "time_generate", "time_update", "time_sync", "time_step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["vllm", "transformers"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("-m", type=int, default=4)
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args()

    rows = []
    for engine in args.engines:
        cfg = TrainConfig(
            engine=engine,
            steps=args.steps,
            m=args.m,
            n=args.n,
            output_dir=Path("runs/engine-steps") / engine,
            progress=False,
            plot=False,
        )
        records = run(cfg)[1:]  # step 1 pays the warm-up
        rows.append(
            {
                "engine": engine,
                "steps_averaged": len(records),
                **{p: statistics.fmean(r[p] for r in records) for p in PARTS},
                "effective_ratio": statistics.fmean(r["effective_ratio"] for r in records),
            }
        )
    print(f"{'engine':<13} " + " ".join(f"{p.removeprefix('time_'):>9}" for p in PARTS))
    for r in rows:
        print(f"{r['engine']:<13} " + " ".join(f"{r[p]:>9.2f}" for p in PARTS))
    meta = {"settings": vars(args), "model": "smollm2", "selection": "pcl"}
    print(f"wrote {write_result('engine_steps', meta, rows)}")


if __name__ == "__main__":
    main()
