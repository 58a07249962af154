"""Crash recovery of the production service, measured on real processes (the CLI is
crash_overload.py; ``tests/reliability/test_crash.py`` runs a short trial in CI).

Clients post updates (retrying each with its own Idempotency-Key until acknowledged) while the
service is killed with SIGKILL at random moments, and every third time redis-server instead.
Afterwards: every acknowledged update must be in the log exactly once at the version it was
acknowledged with, the sequence numbers must have no gaps, the model must be at the last one,
its version must never have gone backwards, and its scores must equal those of a fresh
service that applied the same accepted updates once each, in order.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from sweetspot_service.testing import RedisServer, ServiceProcess, wait_until

POOL = [f"What is {a} + {b}?" for a in range(12) for b in range(12)]


# Crash --------------------------------------------------------------------------------------


@dataclass
class CrashReport:
    iterations: int
    service_kills: int = 0
    redis_kills: int = 0
    keys_sent: int = 0
    acknowledged: int = 0
    accepted: int = 0
    final_version: int = 0
    lost: list[str] = field(default_factory=list)
    wrong_version: list[str] = field(default_factory=list)
    seq_gaps_or_duplicates: int = 0
    not_applied_or_applied_twice: int = 0
    version_regressions: int = 0
    unexpected_statuses: list[str] = field(default_factory=list)
    max_score_diff_vs_replay: float = float("nan")
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not self.lost
            and not self.wrong_version
            and self.seq_gaps_or_duplicates == 0
            and self.not_applied_or_applied_twice == 0
            and self.version_regressions == 0
            and not self.unexpected_statuses
            and self.max_score_diff_vs_replay < 1e-4
        )


class _Clients:
    """Threads that post updates, each retried with one key until acknowledged."""

    def __init__(self, url: str, count: int, seed: int) -> None:
        self.url = url
        self.bodies: dict[str, dict[str, Any]] = {}
        self.acked: dict[str, int] = {}
        self.unexpected: list[str] = []
        self.versions: list[int] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._post_loop, args=(i, seed), daemon=True)
            for i in range(count)
        ]
        self.threads.append(threading.Thread(target=self._watch_version, daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _post_loop(self, client: int, seed: int) -> None:
        rng = random.Random(seed * 1000 + client)
        with httpx.Client(timeout=10) as http:
            for i in range(10**9):
                if self.stop.is_set():
                    return
                key = f"c{client}-{i}"
                prompts = rng.sample(POOL, 3)
                rewards = [[float(rng.random() < 0.5) for _ in range(4)] for _ in prompts]
                body = {"prompts": prompts, "rewards": rewards}
                with self.lock:
                    self.bodies[key] = body
                while not self.stop.is_set():
                    try:
                        response = http.post(
                            f"{self.url}/v1/update", json=body, headers={"Idempotency-Key": key}
                        )
                    except httpx.TransportError:
                        self.stop.wait(0.05)
                        continue
                    if response.status_code == 200:
                        with self.lock:
                            self.acked[key] = response.json()["model_version"]
                        break
                    if response.status_code not in (429, 503):
                        self.unexpected.append(f"{response.status_code}: {response.text[:200]}")
                    self.stop.wait(0.05)

    def _watch_version(self) -> None:
        with httpx.Client(timeout=2) as http:
            while not self.stop.is_set():
                try:
                    response = http.get(f"{self.url}/v1/runs/default")
                    if response.status_code == 200:
                        self.versions.append(response.json()["model_version"])
                except httpx.TransportError:
                    pass
                self.stop.wait(0.02)


def _await_progress(load: _Clients, when: str) -> None:
    target = len(load.acked) + 2
    wait_until(lambda: len(load.acked) >= target, f"two more updates {when}", timeout=120)


def crash_trial(
    backbone: str, workdir: Path, *, iterations: int, clients: int = 3, seed: int = 0
) -> CrashReport:
    start = time.perf_counter()
    rng = random.Random(seed)
    report = CrashReport(iterations=iterations)
    store = RedisServer(workdir / "redis").start()
    args = ["--backbone", backbone, "--redis-url", store.url, "--redis-timeout-s", "0.5"]
    args += ["--checkpoint-dir", str(workdir / "ckpt"), "--checkpoint-every", "5"]
    args += ["--update-timeout-s", "5"]
    service = ServiceProcess(args, workdir / "service.log").start()
    load = _Clients(service.url, clients, seed)
    load.start()
    try:
        for iteration in range(iterations):
            _await_progress(load, "between crashes")
            time.sleep(rng.uniform(0.0, 0.4))  # a random moment, mid-traffic
            if iteration % 3 == 2:
                store.kill()
                report.redis_kills += 1
                store.start()
            else:
                service.kill()
                report.service_kills += 1
                service.start()
        _await_progress(load, "after the last crash")
    finally:
        load.finish()
    try:
        report.keys_sent = len(load.bodies)
        report.acknowledged = len(load.acked)
        report.unexpected_statuses = load.unexpected[:10]
        report.version_regressions = sum(
            b < a for a, b in zip(load.versions, load.versions[1:], strict=False)
        )
        _verify_log(report, load, store, service)
    finally:
        service.kill()
        store.kill()
    report.seconds = time.perf_counter() - start
    return report


def _verify_log(
    report: CrashReport, load: _Clients, store: RedisServer, service: ServiceProcess
) -> None:
    db = redis.Redis.from_url(store.url, decode_responses=True)
    last_seq = int(db.get("sweetspot:{default}:seq") or 0)
    wait_until(
        lambda: httpx.get(f"{service.url}/v1/runs/default").json()["model_version"] == last_seq,
        "model caught up with the log",
        timeout=60,
    )
    seq_of: dict[str, int] = {}
    for key in load.bodies:
        seq = db.hget(f"sweetspot:{{default}}:idem:{key}", "seq")
        if seq is not None:
            seq_of[key] = int(seq)
    report.accepted = len(seq_of)
    report.lost = [k for k in load.acked if k not in seq_of][:10]
    report.wrong_version = [k for k, v in load.acked.items() if seq_of.get(k, v) != v][:10]
    report.seq_gaps_or_duplicates = len(
        set(range(1, last_seq + 1)).symmetric_difference(seq_of.values())
    ) + (len(seq_of) - len(set(seq_of.values())))
    final = httpx.get(f"{service.url}/v1/runs/default").json()["model_version"]
    report.final_version = final
    report.not_applied_or_applied_twice = abs(final - len(seq_of))
    scores = httpx.post(f"{service.url}/v1/score", json={"prompts": POOL}, timeout=60).json()
    in_order = sorted(seq_of, key=seq_of.__getitem__)
    reference = _replay_once(service.args, [load.bodies[k] for k in in_order], service.log_path)
    report.max_score_diff_vs_replay = max(
        abs(a - b) for a, b in zip(scores["scores"], reference, strict=True)
    )


def _replay_once(args: list[str], bodies: list[dict[str, Any]], log: Path) -> list[float]:
    """A fresh in-memory service that applies each accepted update once, in order."""
    backbone = args[args.index("--backbone") + 1]
    fresh = ServiceProcess(["--backbone", backbone], log.with_name("replay.log")).start()
    try:
        with httpx.Client(timeout=60) as http:
            for body in bodies:
                http.post(f"{fresh.url}/v1/update", json=body).raise_for_status()
            scores: list[float] = http.post(f"{fresh.url}/v1/score", json={"prompts": POOL}).json()[
                "scores"
            ]
            return scores
    finally:
        fresh.kill()
