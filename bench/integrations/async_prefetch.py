"""How much selection time an async loop hides by prefetching the next selection.

    .venv/bin/python bench/integrations/async_prefetch.py [--rounds 4] [--steps 6] [--train-s 0.5]

One ``AsyncSweetspotClient`` + ``PromptCurriculum`` against a local ``sweetspot-serve``
(MiniLM value model, head mode) over the ground-truth ``chain_sum`` pool. Each step selects m
prompts of k·m candidates, "trains" (a CPU-bound torch matmul loop of about ``--train-s`` s in
a worker thread, standing in for the policy update; it competes with the service for the
cores as a real update would), and reports rewards drawn from each prompt's measured success
rate. Two loops, alternated in short blocks within one run (these machines drift):

- sequential: ``await anext_batch()`` → train → ``await areport()``;
- prefetch: the next ``anext_batch()`` task starts before training
  (docs/integrations.md, *Async loops*).

Per step it records the time the loop waits for its selection. Hidden share =
1 − (prefetch wait / sequential wait), per round against the sequential blocks around it.
Writes bench/results/async_prefetch.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import load_ground_truth, write_result

from sweetspot_client import AsyncSweetspotClient, CurriculumBatch, PromptCurriculum

Row = dict[str, Any]
TRAIN_SECONDS: list[float] = []  # measured stand-in update times, for the record


def calibrate(seconds: float) -> int:
    """Matmul iterations that take about ``seconds`` on this machine, now (after a warm-up)."""
    train(50)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.5:
        train(20)
        count += 20
    per = (time.perf_counter() - started) / count
    return max(1, round(seconds / per))


def train(iterations: int) -> None:
    a = torch.randn(256, 256)
    for _ in range(iterations):
        a = torch.tanh(a @ a)


def rewards(batch: CurriculumBatch[Row], n: int, rng: random.Random) -> list[list[float]]:
    return [[float(rng.random() < row["p"]) for _ in range(n)] for row in batch.items]


async def block(
    curriculum: PromptCurriculum[Row],
    prefetch: bool,
    steps: int,
    iterations: int,
    n: int,
    seed: int,
) -> list[float]:
    """One block of ``steps`` steps; the seconds the loop waited for each selection."""
    rng = random.Random(seed)
    waits: list[float] = []
    upcoming = asyncio.create_task(curriculum.anext_batch()) if prefetch else None
    for _ in range(steps):
        started = time.perf_counter()
        batch = await upcoming if upcoming is not None else await curriculum.anext_batch()
        waits.append(time.perf_counter() - started)
        if prefetch:
            upcoming = asyncio.create_task(curriculum.anext_batch())  # selects while we train
        started = time.perf_counter()
        await asyncio.to_thread(train, iterations)
        TRAIN_SECONDS.append(time.perf_counter() - started)
        await curriculum.areport(batch, rewards(batch, n, rng))
    if upcoming is not None:
        await upcoming  # let the last prefetch finish before the next block
    return waits


async def measure(url: str, args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    pool = load_ground_truth()
    iterations = calibrate(args.train_s)
    async with AsyncSweetspotClient(base_url=url, timeout=60) as client:
        curriculum = PromptCurriculum(client, pool, m=args.m, k=4, seed=0)
        await block(curriculum, False, 2, iterations, args.n, seed=-1)  # warm-up
        sequential: list[list[float]] = []
        prefetch: list[list[float]] = []
        hidden: list[float] = []
        for r in range(args.rounds):
            before = await block(curriculum, False, args.steps, iterations, args.n, seed=3 * r)
            during = await block(curriculum, True, args.steps, iterations, args.n, seed=3 * r + 1)
            after = await block(curriculum, False, args.steps, iterations, args.n, seed=3 * r + 2)
            sequential += [before, after]
            prefetch.append(during)
            around = statistics.fmean(before + after)
            hidden.append(1 - statistics.fmean(during) / around)
    seq = [w for b in sequential for w in b]
    pre = [w for b in prefetch for w in b]
    rows = [
        {"loop": "sequential", "steps": len(seq), "wait_ms_median": 1e3 * statistics.median(seq),
         "wait_ms_mean": 1e3 * statistics.fmean(seq)},
        {"loop": "prefetch", "steps": len(pre), "wait_ms_median": 1e3 * statistics.median(pre),
         "wait_ms_mean": 1e3 * statistics.fmean(pre),
         "hidden_share_median": statistics.median(hidden), "hidden_share_rounds": hidden},
    ]  # fmt: skip
    return rows, {
        "train_iterations": iterations,
        "train_seconds_median": statistics.median(TRAIN_SECONDS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="steps per block")
    parser.add_argument("--train-s", type=float, default=0.5, help="stand-in update seconds")
    parser.add_argument("-m", type=int, default=8)
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args()

    from sweetspot_trainer.service import embedded_service

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "service.log"
        with embedded_service(backbone="minilm", log_path=log) as url:
            rows, extra = asyncio.run(measure(url, args))
    for row in rows:
        hidden = row.get("hidden_share_median")
        print(
            f"{row['loop']:10}  wait median {row['wait_ms_median']:7.1f} ms  mean "
            f"{row['wait_ms_mean']:7.1f} ms"
            + (f"  hidden {hidden:.0%} (median of rounds)" if hidden is not None else "")
        )
    meta = {
        "command": "bench/integrations/async_prefetch.py " + " ".join(sys.argv[1:]),
        "settings": {**vars(args), **extra, "k": 4, "backbone": "minilm (head mode)"},
    }
    print(f"wrote {write_result('async_prefetch', meta, rows)}")


if __name__ == "__main__":
    main()
