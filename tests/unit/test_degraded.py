"""Issue 11.7: a checkpoint that cannot be written and a failed run show in /readyz and
/metrics, are logged once per change rather than a traceback per pass, and shutdown copes."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sweetspot_service.core.config import Settings
from sweetspot_service.main import create_app
from sweetspot_service.testing import wait_until


def test_a_full_checkpoint_disk_and_a_failed_run_degrade_readiness_not_serving(
    tiny_llama: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "ckpt"
    settings = Settings(
        backbone=str(tiny_llama),
        checkpoint_dir=folder,
        checkpoint_every=1,
        log_poll_interval_s=0.05,
    )
    app = create_app(settings)
    caplog.set_level(logging.INFO, logger="sweetspot_service")
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, "ready", timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
        folder.write_text("a file where the checkpoint folder was: every write fails")
        for i in range(3):
            update = {"prompts": [f"prompt {i}"], "rewards": [[1.0]]}
            assert client.post("/v1/update", json=update).status_code == 200
        wait_until(
            lambda: client.get("/readyz").json().get("degraded") is True, "degraded", timeout=30
        )

        broken = app.state.runtime.runs["default"]
        broken.model.version += 5  # as if restored from a checkpoint the log does not continue
        update = {"prompts": ["after the gap"], "rewards": [[0.0]]}
        assert client.post("/v1/update", json=update).status_code == 409

        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True  # still serves
        problems = ready.json()["problems"]
        assert any("checkpoint" in p and "default" in p for p in problems), problems
        assert any("failed" in p and "disagree" in p for p in problems), problems
        metrics = client.get("/metrics").text
        assert "sweetspot_failed_runs 1.0" in metrics
        assert "sweetspot_checkpoint_failing_runs 1.0" in metrics
        errors = next(
            x for x in metrics.splitlines() if x.startswith("sweetspot_checkpoint_errors_total")
        )
        assert float(errors.split()[1]) >= 1
    failures = [r for r in caplog.records if "not written" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # once, not every pass
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks for a known failure"
    assert "shutdown failed" not in caplog.text.lower()
