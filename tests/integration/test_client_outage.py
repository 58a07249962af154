"""Issue 19.11: the README loop against a hung service (SIGSTOP) falls back to uniform
draws within selection's own short budget, and uses the service again once it is back."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sweetspot_client import PromptCurriculum, SweetspotClient
from sweetspot_service.testing import ServiceProcess

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
