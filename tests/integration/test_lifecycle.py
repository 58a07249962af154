"""Readiness and failure reporting of a real process, and the packaged SmolLM2 backbone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sweetspot_client import Retries, ServiceUnavailableError, SweetspotClient
from sweetspot_trainer.service import embedded_service


def test_unloadable_backbone_reports_failure_with_reason(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    service = embedded_service(backbone=str(missing), log_path=tmp_path / "log", ready_timeout=60)
    with pytest.raises(RuntimeError, match="failed to load"), service:
        pass


def test_score_is_503_until_ready(tmp_path: Path) -> None:
    """A server whose model failed answers liveness, but scores with 503 and a reason."""
    import subprocess
    import sys
    import time

    from sweetspot_trainer.service import free_port

    port = free_port()
    command = [sys.executable, "-m", "sweetspot_service.cli", "--backbone", str(tmp_path / "x")]
    process = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = httpx.get(f"{url}/readyz")
                if ready.json()["status"] == "failed":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service never reported its failure"
            time.sleep(0.2)
        assert ready.status_code == 503
        assert httpx.get(f"{url}/healthz").status_code == 200
        client = SweetspotClient(base_url=url, retries=Retries(max_retries=0))
        with client, pytest.raises(ServiceUnavailableError, match="failed to load"):
            client.score(["What is 1 + 1?"])
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.slow
def test_smollm2_backbone_scores_and_learns(tmp_path: Path) -> None:
    prompts = ["What is 1 + 1?", "Integrate x^x dx in closed form."]
    with (
        embedded_service(backbone="smollm2", log_path=tmp_path / "log") as url,
        SweetspotClient(base_url=url) as client,
    ):
        assert client.health().backbone == "smollm2"
        assert client.score(prompts).scores == pytest.approx([0.5, 0.5])
        for _ in range(10):
            answer = client.update(prompts, [[1.0, 1.0], [0.0, 0.0]], steps=3)
        assert answer.mae_before < 0.45
        easy, hard = client.score(prompts).scores
        assert easy > 0.5 > hard
