"""glibc's allocator defaults against ``keep_freed_memory``, paired in one run.

    .venv/bin/python bench/speed/allocator.py [--backbone minilm] [--batch 64] [--block 12]
        [--rounds 6]
    .venv/bin/python bench/speed/allocator.py --part update [--rounds 5] [--rollouts 32]

``--part service`` (the default) measures scoring through the service; ``--part update``
measures the trainer's GRPO policy update (SmolLM2-135M, float32, synthetic rollouts of
40 prompt and 64-127 completion tokens) in two worker processes, one with glibc's defaults
and one after ``keep_freed_memory()``, alternating default, kept, default per round, and
writes bench/results/allocator_update.json.

Service part:

Two real ``sweetspot-serve`` processes, identical but for glibc's allocator thresholds
(``--no-keep-freed-memory`` leaves glibc's defaults), score the same blocks of distinct
prompts with caches off, in ``score_throughput.paired_rounds``: each round runs one block
off, on, off, and the "on" block is divided by the mean of the "off" blocks around it.
Also counts each process's minor page faults per request (from /proc) and its resident
memory at the end. Prints a table and writes
bench/results/allocator_<backbone>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import RESULTS, percentile, write_result
from _update_worker import UpdateWorkers
from score_throughput import HttpLoad, Pass, paired_rounds

from sweetspot_service.testing import ServiceProcess
from sweetspot_trainer.tasks import make_task


def minor_faults(pid: int) -> int:
    """Minor page faults of process ``pid`` so far (field 10 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])


def update_part(rounds: int, rollouts: int) -> None:
    """The GRPO policy update in two worker processes, glibc defaults against kept memory."""
    workers = UpdateWorkers({"defaults": ("defaults", "fp32"), "kept": ("kept", "fp32")}, rollouts)
    try:
        samples, ratios = workers.paired("defaults", "kept", rounds)
    finally:
        workers.close()
    rows: list[dict[str, Any]] = [
        {
            "allocator": "glibc defaults" if mode == "defaults" else "keep freed memory",
            "updates": len(xs),
            "seconds_per_update": statistics.fmean(x["seconds"] for x in xs),
            "minor_faults_per_update": statistics.fmean(x["faults"] for x in xs),
            "rss_mb": xs[-1]["VmRSS"] / 1024,
            "peak_rss_mb": max(x["VmHWM"] for x in xs) / 1024,
        }
        for mode, xs in samples.items()
    ]
    rows[1]["speedup"] = statistics.median(ratios)
    rows[1]["round_speedups"] = ratios
    print(f"GRPO policy update, SmolLM2-135M, {rollouts} rollouts, {rounds} paired rounds")
    header = f"{'allocator':<18} {'s/update':>9} {'faults':>10} {'RSS MB':>7}"
    print(f"{header} {'peak MB':>8} {'speedup':>8}")
    for r in rows:
        print(
            f"{r['allocator']:<18} {r['seconds_per_update']:>9.2f} "
            f"{r['minor_faults_per_update']:>10.0f} {r['rss_mb']:>7.0f} {r['peak_rss_mb']:>8.0f} "
            f"{r.get('speedup', 1.0):>8.2f}"
        )
    meta = {"part": "update", "model": "smollm2", "rollouts": rollouts, "rounds": rounds}
    print(f"wrote {write_result('allocator_update', meta, rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["service", "update"], default="service")
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--batch", type=int, default=64, help="prompts per request")
    parser.add_argument("--block", type=int, default=12, help="requests per timed block")
    parser.add_argument("--rounds", type=int, default=6, help="paired rounds")
    parser.add_argument("--rollouts", type=int, default=32, help="rollouts per update (update)")
    args = parser.parse_args()
    if args.part == "update":
        update_part(args.rounds, args.rollouts)
        return

    size = args.batch * args.block * 4
    prompts = [p.prompt for p in make_task("chain_sum", seed=7, size=size).problems]
    batches = [prompts[i : i + args.batch] for i in range(0, len(prompts), args.batch)]
    blocks = [batches[i : i + args.block] for i in range(0, len(batches), args.block)]
    common = ["--backbone", args.backbone, "--embedding-cache-size", "0"]
    common += ["--score-cache-ttl-s", "0"]
    log = RESULTS / f"allocator_{args.backbone}.service.log"
    variants = {"glibc defaults": ["--no-keep-freed-memory"], "keep freed memory": []}
    services = {name: ServiceProcess(common + extra, log) for name, extra in variants.items()}
    faults: dict[str, list[float]] = {name: [] for name in services}
    try:
        for service in services.values():
            service.start(timeout=300)
        loads = {name: HttpLoad(s.url, 1) for name, s in services.items()}
        for load in loads.values():
            load.run(batches)  # warm-up over every batch shape

        def timed(name: str) -> Callable[[list[list[str]]], Pass]:
            """A block through service ``name``, counting its page faults."""

            def run(block: list[list[str]]) -> Pass:
                pid = services[name].process.pid  # type: ignore[union-attr]
                before = minor_faults(pid)
                measured = loads[name].run(block)
                faults[name].append((minor_faults(pid) - before) / len(block))
                return measured

            return run

        off, on = variants
        base, kept = paired_rounds(timed(off), {1: timed(on)}, blocks, args.rounds)
        passes = {off: base.passes, on: kept[1].passes}
        ratios = kept[1].ratios
        rss = {name: s.rss_bytes() for name, s in services.items()}
        for load in loads.values():
            load.close()
    finally:
        for service in services.values():
            service.stop()

    rows: list[dict[str, Any]] = []
    for name in services:
        ps = passes[name]
        prompts_done = sum(p.prompts for p in ps)
        seconds = sum(p.seconds for p in ps)
        latencies = [x for p in ps for x in p.latencies]
        rows.append(
            {
                "allocator": name,
                "passes": len(ps),
                "prompts_per_s": prompts_done / seconds,
                "latency_p50_s": percentile(latencies, 50),
                "minor_faults_per_request": statistics.fmean(faults[name]),
                "rss_mb": rss[name] / 2**20,
            }
        )
    rows[1]["ratio_to_defaults"] = statistics.median(ratios)
    rows[1]["ratio_p25"] = percentile(ratios, 25)
    rows[1]["ratio_p75"] = percentile(ratios, 75)
    rows[1]["round_ratios"] = ratios
    print(f"backbone {args.backbone}, {args.batch} prompts/request, {args.rounds} paired rounds")
    header = f"{'allocator':<18} {'prompts/s':>10} {'p50 s':>7} {'faults/req':>10}"
    print(f"{header} {'RSS MB':>7} {'ratio':>6}")
    for r in rows:
        ratio = f"{r['ratio_to_defaults']:.2f}" if "ratio_to_defaults" in r else "1.00"
        print(
            f"{r['allocator']:<18} {r['prompts_per_s']:>10.1f} {r['latency_p50_s']:>7.3f} "
            f"{r['minor_faults_per_request']:>10.0f} {r['rss_mb']:>7.0f} {ratio:>6}"
        )
    meta = {"backbone": args.backbone, "batch": args.batch, "block": args.block}
    meta["rounds"] = args.rounds
    print(f"wrote {write_result(f'allocator_{args.backbone}', meta, rows)}")


if __name__ == "__main__":
    main()
