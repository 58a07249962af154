"""Overload: past the admission bound only 200s and 429s, health answers, memory flat.

The outcome must not depend on the machine's speed (issue 11: at "2x measured capacity" a
busy machine got no 429, because capacity had been measured while the cores were shared).
So the service gets a small bound, and that many score requests are held in flight by
freezing Redis (SIGSTOP): each blocks on its score-cache lookup, and the admission gauge says
when all are in. Every further score request must then be shed with 429, whatever the speed.
The open-loop variant at 2x measured capacity stays in ``bench/reliability/crash_overload.py``.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from pathlib import Path

import httpx

from sweetspot_service.testing import RedisServer, ServiceProcess

BOUND = 4
BURST = 40


def test_past_the_admission_bound_gets_only_200_and_429(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    # A socket timeout far above the test's length: held requests wait for SIGCONT, not
    # for a timeout (after which they would score without the cache, still 200).
    args += ["--max-queued-scores", str(BOUND), "--redis-timeout-s", "300"]
    service = ServiceProcess(args, tmp_path / "service.log").start()
    assert redis_server.process is not None
    held: list[httpx.Response] = []
    holders = [
        threading.Thread(
            target=lambda i=i: held.append(
                httpx.post(f"{service.url}/v1/score", json={"prompts": [f"held {i}"]}, timeout=300)
            )
        )
        for i in range(BOUND)
    ]
    frozen = False
    try:
        rss_before = service.rss_bytes()
        redis_server.process.send_signal(signal.SIGSTOP)
        frozen = True
        for holder in holders:
            holder.start()
        service.wait_admitted("score", count=BOUND)

        with httpx.Client(base_url=service.url, timeout=30) as client:
            burst = [
                client.post("/v1/score", json={"prompts": [f"burst {i}"]}) for i in range(BURST)
            ]
            select = client.post("/v1/select", json={"prompts": ["a", "b"], "m": 1})
            health = client.get("/healthz")
        assert [r.status_code for r in burst] == [429] * BURST, Counter(
            r.status_code for r in burst
        )
        assert all(r.headers.get("retry-after") == "1" for r in burst)
        assert select.status_code == 429  # select shares the score bound
        assert health.status_code == 200  # health never waits behind the shed requests
        service.wait_admitted("score", count=BOUND)  # the burst took no slot

        redis_server.process.send_signal(signal.SIGCONT)
        frozen = False
        for holder in holders:
            holder.join(timeout=120)
        assert [r.status_code for r in held] == [200] * BOUND, [r.text for r in held]
        service.wait_admitted("score", count=0)
        after = httpx.post(f"{service.url}/v1/score", json={"prompts": ["after"]}, timeout=30)
        assert after.status_code == 200  # capacity comes back once the slots are free
        # Memory: shed requests are answered, not queued; no growth from the burst.
        assert service.rss_bytes() < rss_before * 1.25 + 50 * 2**20
    finally:
        if frozen:
            redis_server.process.send_signal(signal.SIGCONT)
        for holder in holders:
            holder.join(timeout=30)
        service.kill()
