"""Reliability of the production service: crash recovery and overload, measured on real processes.

    python bench/reliability/crash_overload.py crash --iterations 30   # SIGKILL service/redis
    python bench/reliability/crash_overload.py overload --seconds 10   # capacity, 0.5x, 2x

``tests/reliability/`` runs short versions of the same trials in CI.

Crash (``crash.py``): clients post updates while the service and redis-server are killed with
SIGKILL at random moments; every acknowledged update must be applied exactly once.

Overload: closed-loop clients measure capacity (requests/s); open-loop arrivals at 0.5x that
give baseline latency, at 2x they must get only 200s and 429s while /healthz stays fast, at
0.5x again latency must come back, and a second 2x phase shows whether memory keeps growing
(RSS is read after every phase).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import percentile, write_result
from crash import POOL, crash_trial

from sweetspot_service.testing import ServiceProcess

# Overload -----------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    rate: float
    seconds: float
    statuses: dict[str, int]
    goodput: float
    p50_ms: float
    p99_ms: float
    health_p99_ms: float
    health_failures: int
    rss_after_mb: float = float("nan")


@dataclass
class OverloadReport:
    capacity_rps: float
    prompts_per_request: int
    phases: list[Phase]
    rss_before_mb: float
    rss_after_mb: float

    @property
    def only_200_and_429(self) -> bool:
        return all(set(p.statuses) <= {"200", "429"} for p in self.phases)


class _Bodies:
    """Fresh prompts for every request (as each training step brings new candidates), so the
    score cache cannot answer them; the same length as the pool's prompts."""

    def __init__(self, prompts_per_request: int) -> None:
        self.size = prompts_per_request
        self.count = 0

    def next(self) -> dict[str, Any]:
        self.count += 1
        base = POOL[: self.size]
        return {"prompts": [f"{p} (request {self.count}, item {i})" for i, p in enumerate(base)]}


async def _closed_loop(url: str, bodies: _Bodies, clients: int, seconds: float) -> float:
    done = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=60) as http:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                response = await http.post(f"{url}/v1/score", json=bodies.next())
                if response.status_code == 200:
                    done += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return done / (time.monotonic() - start)


async def _open_loop(url: str, bodies: _Bodies, name: str, rate: float, seconds: float) -> Phase:
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    health: list[float] = []
    health_failures = 0
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one() -> None:
            start = time.perf_counter()
            try:
                response = await http.post(f"{url}/v1/score", json=bodies.next())
                status = str(response.status_code)
            except httpx.TransportError as exc:
                status = type(exc).__name__
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200":
                latencies.append(time.perf_counter() - start)

        async def probe_health() -> None:
            nonlocal health_failures
            async with httpx.AsyncClient(timeout=5) as probe:
                while not stop.is_set():
                    start = time.perf_counter()
                    try:
                        ok = (await probe.get(f"{url}/healthz")).status_code == 200
                    except httpx.TransportError:
                        ok = False
                    health.append(time.perf_counter() - start)
                    health_failures += not ok
                    await asyncio.sleep(0.1)

        prober = asyncio.create_task(probe_health())
        tasks = []
        begin = time.monotonic()
        n = int(rate * seconds)
        for i in range(n):
            await asyncio.sleep(max(0.0, begin + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        stop.set()
        await prober
    return Phase(
        name=name,
        rate=rate,
        seconds=seconds,
        statuses=statuses,
        goodput=statuses.get("200", 0) / seconds,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        health_p99_ms=percentile(health, 99) * 1000,
        health_failures=health_failures,
    )


def overload_trial(
    backbone: str,
    workdir: Path,
    *,
    seconds: float,
    prompts_per_request: int = 64,
    max_queued: int = 16,
    extra_args: list[str] | None = None,
) -> OverloadReport:
    args = ["--backbone", backbone, "--max-queued-scores", str(max_queued), *(extra_args or [])]
    service = ServiceProcess(args, workdir / "overload.log").start()
    bodies = _Bodies(prompts_per_request)
    try:
        asyncio.run(_closed_loop(service.url, bodies, 2, min(2.0, seconds)))  # warm up
        capacity = asyncio.run(_closed_loop(service.url, bodies, 4, seconds))
        rss_before = service.rss_bytes()
        phases = []
        for name, factor in (("0.5x", 0.5), ("2x", 2.0), ("0.5x after", 0.5), ("2x again", 2.0)):
            phase = asyncio.run(_open_loop(service.url, bodies, name, factor * capacity, seconds))
            phase.rss_after_mb = service.rss_bytes() / 2**20
            phases.append(phase)
        rss_after = service.rss_bytes()
    finally:
        service.kill()
    return OverloadReport(
        capacity, prompts_per_request, phases, rss_before / 2**20, rss_after / 2**20
    )


# CLI ----------------------------------------------------------------------------------------


def _print_overload(over: OverloadReport) -> None:
    print(f"capacity: {over.capacity_rps:.1f} requests/s of {over.prompts_per_request} prompts")
    print(f"RSS before the first phase: {over.rss_before_mb:.0f} MB")
    header = f"{'phase':<11} {'rate':>6} {'goodput':>8} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{header} {'health p99':>10} {'RSS MB':>7}")
    for p in over.phases:
        print(
            f"{p.name:<11} {p.rate:>6.1f} {p.goodput:>8.1f} {p.p50_ms:>8.0f} {p.p99_ms:>8.0f}"
            f" {p.health_p99_ms:>10.1f} {p.rss_after_mb:>7.0f}  {p.statuses}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("trial", choices=["crash", "overload"])
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-caches",
        action="store_true",
        help="overload: embedding and score caches off (they grow to their bounds otherwise)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweetspot-reliability-") as tmp:
        if args.trial == "crash":
            report = crash_trial(
                args.backbone, Path(tmp), iterations=args.iterations, seed=args.seed
            )
            row = {**asdict(report), "ok": report.ok}
            print(json.dumps(row, indent=2))
            path = write_result("reliability_crash", {"backbone": args.backbone}, [row])
        else:
            caches_off = ["--embedding-cache-size", "0", "--score-cache-ttl-s", "0"]
            over = overload_trial(
                args.backbone,
                Path(tmp),
                seconds=args.seconds,
                extra_args=caches_off if args.no_caches else None,
            )
            _print_overload(over)
            meta = {
                "backbone": args.backbone,
                "caches": "off" if args.no_caches else "on (default sizes)",
                "capacity_rps": over.capacity_rps,
                "prompts_per_request": over.prompts_per_request,
                "rss_before_mb": over.rss_before_mb,
                "rss_after_mb": over.rss_after_mb,
                "only_200_and_429": over.only_200_and_429,
            }
            name = "reliability_overload" + ("_no_caches" if args.no_caches else "")
            path = write_result(name, meta, [asdict(p) for p in over.phases])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
