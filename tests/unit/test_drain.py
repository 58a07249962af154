"""SIGTERM's first effect (``Runtime.begin_drain``): readiness and model routes turn 503."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from sweetspot_service.core.config import Settings
from sweetspot_service.main import create_app


def test_draining_service_is_unready_and_refuses_new_work(tiny_llama: Path) -> None:
    app = create_app(Settings(backbone=str(tiny_llama)))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        app.state.runtime.begin_drain()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        refused = client.post("/v1/score", json={"prompts": ["1 + 1?"]})
        assert refused.status_code == 503 and "shutting down" in refused.json()["detail"]
        assert client.get("/healthz").status_code == 200  # still alive while it drains
