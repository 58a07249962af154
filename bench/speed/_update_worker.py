"""GRPO policy updates in worker processes, for paired comparisons of process-wide settings.

``UpdateWorkers`` starts one worker process per variant (a variant picks the allocator and
the autocast dtype, which are process-wide or per-process choices) and times one update at
a time on request, so a benchmark can alternate variants on a noisy machine. Each worker
loads SmolLM2-135M in float32 and trains on the same synthetic rollouts (40 prompt and
64-127 completion tokens, advantages ±1).

    python bench/speed/_update_worker.py <defaults|kept> <fp32|bf16> <rollouts>   (one worker)
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


def synthetic_rollouts(count: int, *, seed: int) -> tuple[list[Any], Any]:
    """``count`` rollouts of 40 prompt and 64-127 completion tokens, and advantages ±1."""
    import torch

    from sweetspot_trainer.rollout import Rollout

    rng = random.Random(seed)
    rollouts = [
        Rollout(
            prompt_ids=[rng.randrange(1000) for _ in range(40)],
            completion_ids=[rng.randrange(1000) for _ in range(rng.randrange(64, 128))],
            text="",
            finished=True,
        )
        for _ in range(count)
    ]
    return rollouts, torch.tensor([1.0 if i % 2 else -1.0 for i in range(count)])


def serve(allocator: str, precision: str, count: int) -> None:
    """The worker: print ``ready``, then one JSON line per line read from stdin."""
    if allocator == "kept":
        from sweetspot_service.allocator import keep_freed_memory

        keep_freed_memory()
    import torch

    from sweetspot_trainer.policy import UpdateOptions, grpo_update
    from sweetspot_trainer.train import load_policy

    policy, _ = load_policy("smollm2", "cpu")
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-7)
    rollouts, advantages = synthetic_rollouts(count, seed=0)
    options = UpdateOptions(autocast_dtype=torch.bfloat16 if precision == "bf16" else None)
    grpo_update(policy, optimizer, rollouts, advantages, options, pad_id=0)  # warm-up
    print("ready", flush=True)
    for _ in sys.stdin:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        stats = grpo_update(policy, optimizer, rollouts, advantages, options, pad_id=0)
        seconds = time.perf_counter() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        status = Path("/proc/self/status").read_text().splitlines()
        kb = {
            line.split(":")[0]: int(line.split()[1])
            for line in status
            if line.startswith(("VmRSS", "VmHWM"))
        }
        print(json.dumps({"seconds": seconds, "faults": faults, **stats, **kb}), flush=True)


class UpdateWorkers:
    """One worker process per variant name -> (allocator, precision)."""

    def __init__(self, variants: dict[str, tuple[str, str]], rollouts: int) -> None:
        self.processes = {
            name: subprocess.Popen(
                [sys.executable, __file__, allocator, precision, str(rollouts)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for name, (allocator, precision) in variants.items()
        }
        for name, process in self.processes.items():
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                self.close()
                raise RuntimeError(f"update worker {name!r} failed to start")

    def step(self, name: str) -> dict[str, Any]:
        """Time one policy update in worker ``name``."""
        process = self.processes[name]
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        return dict(json.loads(process.stdout.readline()))

    def paired(
        self, base: str, other: str, rounds: int
    ) -> tuple[dict[str, list[dict[str, Any]]], list[float]]:
        """``rounds`` of base, other, base updates: every sample, and per round the speed of
        ``other`` over the mean of the ``base`` updates around it."""
        samples: dict[str, list[dict[str, Any]]] = {base: [], other: []}
        ratios: list[float] = []
        for _ in tqdm(range(rounds), desc="paired rounds", leave=False):
            before, measured, after = self.step(base), self.step(other), self.step(base)
            samples[base] += [before, after]
            samples[other].append(measured)
            ratios.append(
                statistics.fmean([before["seconds"], after["seconds"]]) / measured["seconds"]
            )
        return samples, ratios

    def close(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
