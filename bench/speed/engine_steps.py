"""One PCL step split into selection, generation, policy update, weight sync and the wait for
the value model, per rollout engine and value-update order.

    .venv/bin/python bench/speed/engine_steps.py [--steps 6] [-m 4] [-n 8]

Runs the demo's configuration (SmolLM2-135M, PCL through an embedded service whose value
model trains in full mode, m×n) once per engine and ``--value-update`` order, same seed, and
reports the mean time of each part over the steps after the first (which pays warm-up):
``blocking`` sends a step's rewards after the policy update and weight sync and waits for the
value model's training step; ``overlapped`` sends them as soon as they are computed, so the
value model trains while the policy updates (the wait is what is left when the next selection
is due). Writes bench/results/engine_steps.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import write_result

from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.train import run

PARTS = ("time_select", "time_generate", "time_update", "time_sync", "time_value_wait")
TOTAL = "time_step"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["vllm", "transformers"])
    parser.add_argument(
        "--value-updates", nargs="+", default=["overlapped", "blocking"], help="orders to time"
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("-m", type=int, default=4)
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args()

    rows = []
    for engine in args.engines:
        for order in args.value_updates:
            cfg = TrainConfig(
                engine=engine,
                value_update=order,
                steps=args.steps,
                m=args.m,
                n=args.n,
                output_dir=Path("runs/engine-steps") / f"{engine}-{order}",
                progress=False,
                plot=False,
            )
            records = run(cfg)[1:]  # step 1 pays the warm-up
            rows.append(
                {
                    "engine": engine,
                    "value_update": order,
                    "service_train_mode": cfg.service_train_mode,
                    "steps_averaged": len(records),
                    **{p: statistics.fmean(r[p] for r in records) for p in (*PARTS, TOTAL)},
                    "updates_behind": statistics.fmean(r["updates_behind"] for r in records),
                    "effective_ratio": statistics.fmean(r["effective_ratio"] for r in records),
                }
            )
    names = [p.removeprefix("time_") for p in (*PARTS, TOTAL)]
    print(f"{'engine':<13} {'value update':<12} " + " ".join(f"{n:>11}" for n in names))
    for r in rows:
        times = " ".join(f"{r[p]:>11.2f}" for p in (*PARTS, TOTAL))
        print(f"{r['engine']:<13} {r['value_update']:<12} {times}")
    meta = {"settings": vars(args), "model": "smollm2", "selection": "pcl"}
    print(f"wrote {write_result('engine_steps', meta, rows)}")


if __name__ == "__main__":
    main()
