"""Issue 19.11: the README loop against a hung service (SIGSTOP) falls back to uniform
draws within selection's own short budget, and uses the service again once it is back; its
background reports wait out a stopped service and land once it is back."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sweetspot_client import PromptCurriculum, Retries, SweetspotClient
from sweetspot_service.testing import RedisServer, ServiceProcess

POOL = [f"What is {a} + {a}?" for a in range(16)]


def test_selection_falls_back_quickly_while_the_service_hangs(
    tiny_llama: Path, tmp_path: Path
) -> None:
    service = ServiceProcess(["--backbone", str(tiny_llama)], tmp_path / "service.log").start()
    assert service.process is not None
    try:
        with SweetspotClient(base_url=service.url) as client:  # the README's client
            curriculum = PromptCurriculum(client, POOL, m=2, on_error="uniform", retry_after_s=0)
            assert curriculum.next_batch().fallback is None
            pool = ThreadPoolExecutor(max_workers=1)
            service.process.send_signal(signal.SIGSTOP)
            try:
                start = time.monotonic()
                # ~11 s: 5 s per attempt, one retry. It was 307 s (60 s x 5 attempts).
                batch = pool.submit(curriculum.next_batch).result(timeout=30)
                assert time.monotonic() - start < 20
            finally:
                service.process.send_signal(signal.SIGCONT)  # lets a stuck call finish
                pool.shutdown(wait=False)
            assert batch.fallback is not None and "APITimeoutError" in batch.fallback
            assert len(batch.items) == 2
            assert curriculum.next_batch().fallback is None  # back, and asked again
    finally:
        service.kill()


def test_background_reports_wait_for_a_stopped_service_and_land_once(
    tiny_llama: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    service = ServiceProcess(args, tmp_path / "service.log").start()
    quick = Retries(max_retries=1, initial=0.1, maximum=0.5)
    try:
        with SweetspotClient(base_url=service.url, timeout=10, retries=quick) as client:
            curriculum = PromptCurriculum(
                client,
                POOL,
                m=2,
                on_error="uniform",
                retry_after_s=0,
                select_retries=Retries(max_retries=0, initial=0.0, maximum=0.0),
                report_backoff_s=(0.1, 0.5),
            )
            rewards = [[1.0, 0.0], [0.0, 0.0]]
            curriculum.report(curriculum.next_batch(), rewards, background=True)
            assert curriculum.flush(60)
            service.stop()
            for _ in range(2):  # the loop goes on: uniform draws, reports queued
                batch = curriculum.next_batch()
                assert batch.fallback is not None
                curriculum.report(batch, rewards, background=True)
            assert curriculum.pending_reports() == 2
            saved = curriculum.state_dict()
            assert [r["step"] for r in saved["pending_reports"]] == [1, 2]

            service.start()
            assert curriculum.flush(60)
            assert client.get_run("default").model_version == 3
            # A restart from a checkpoint taken during the outage sends both again under
            # their keys: answered from the idempotency records, not applied twice.
            resumed = PromptCurriculum(client, POOL, m=2)
            resumed.load_state_dict(saved)
            assert resumed.flush(60)
            assert resumed.reporter is not None and resumed.reporter.counts.sent == 2
            assert client.get_run("default").model_version == 3
            assert curriculum.next_batch().fallback is None
            curriculum.close()
            resumed.close()
    finally:
        service.kill()
