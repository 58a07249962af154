"""Issue 19.6 and 19.9: one run's broken model fails that run, never the service.

A checkpoint that cannot be loaded, or a model that diverged to NaN, must leave the other
runs serving, name the run (and the file) in /readyz, in the run's 503s and in the log, and
keep /metrics and calibration answering.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from sweetspot_service.core.config import Settings
from sweetspot_service.main import create_app
from sweetspot_service.testing import RedisServer, ServiceProcess, wait_until

PROMPTS = ["What is 3 + 4?", "What is 12 * 12?"]


def score(url: str, run: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/score", json={"prompts": PROMPTS, "run": run}, timeout=30)


def test_a_corrupt_checkpoint_fails_only_its_run(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    folder = tmp_path / "ckpt"
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(folder), "--checkpoint-every", "1"]
    service = ServiceProcess(args, tmp_path / "service.log").start()
    try:
        for run in ("good", "bad"):
            assert httpx.post(f"{service.url}/v1/runs", json={"name": run}).status_code == 201
        for run in ("default", "good", "bad"):
            body = {"prompts": PROMPTS, "rewards": [[1.0], [0.0]], "run": run}
            assert httpx.post(f"{service.url}/v1/update", json=body, timeout=30).status_code == 200
        service.stop(timeout=60)  # drains and checkpoints every run

        [broken] = (folder / "runs" / "bad").rglob("*.pt")
        broken.write_bytes(broken.read_bytes()[:100])  # truncated
        service.start()  # ready: raised before, as /readyz said "failed"

        ready = httpx.get(f"{service.url}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ok"
        problems = ready.json()["problems"]
        assert any("'bad'" in p and str(broken) in p for p in problems), problems
        assert not any("'good'" in p or "'default'" in p for p in problems), problems

        refused = score(service.url, "bad")
        assert refused.status_code == 503
        assert "'bad'" in refused.json()["detail"] and str(broken) in refused.json()["detail"]
        for run in ("default", "good"):
            answer = score(service.url, run)
            assert answer.status_code == 200 and answer.json()["model_version"] == 1, answer.text
        body = {"prompts": PROMPTS, "rewards": [[0.0], [1.0]], "run": "good"}
        answer = httpx.post(f"{service.url}/v1/update", json=body, timeout=30)
        assert answer.status_code == 200 and answer.json()["model_version"] == 2
        assert httpx.get(f"{service.url}/metrics").status_code == 200
        assert str(broken) in service.log_path.read_text()

        # Deleting the broken run is the way out, and a run of that name starts afresh.
        assert httpx.delete(f"{service.url}/v1/runs/bad").status_code == 204
        assert httpx.post(f"{service.url}/v1/runs", json={"name": "bad"}).status_code == 201
        assert score(service.url, "bad").status_code == 200
        assert httpx.get(f"{service.url}/readyz").json()["problems"] == []
    finally:
        service.kill()


def test_a_diverging_model_fails_its_run_and_every_read_still_answers(tiny_llama: Path) -> None:
    settings = Settings(
        backbone=str(tiny_llama), head_fit="sgd", head_lr=1e30, log_poll_interval_s=0.05
    )
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, "ready", timeout=60)
        assert client.post("/v1/runs", json={"name": "calm"}).status_code == 201
        statuses = []
        for i in range(4):
            update = {"prompts": PROMPTS, "rewards": [[1.0], [0.0]]}
            answer = client.post("/v1/update", json=update, headers={"Idempotency-Key": f"k{i}"})
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                assert answer.json()["loss"] is not None  # never a 200 with "loss": null
        assert 409 in statuses, statuses  # the run diverged and failed, with a reason

        refused = client.post("/v1/score", json={"prompts": PROMPTS})
        assert refused.status_code == 503 and "diverged" in refused.json()["detail"]
        select = {"prompts": PROMPTS, "m": 1}
        assert client.post("/v1/select", json=select).status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert any("'default'" in p and "diverged" in p for p in ready.json()["problems"])
        assert client.get("/v1/runs/default/calibration").status_code == 200
        assert client.get("/metrics").status_code == 200
        calm = client.post("/v1/score", json={"prompts": PROMPTS, "run": "calm"})
        assert calm.status_code == 200 and calm.json()["scores"] == pytest.approx([0.5, 0.5])


def test_a_diverged_default_run_is_told_what_works_and_it_does(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 31.21: the default run cannot be deleted (409), so its advice is a restart with
    a lower rate, after which it comes back from its store and serves."""
    durable = {"redis_url": redis_server.url, "checkpoint_dir": tmp_path / "ckpt"}
    common = {"backbone": str(tiny_llama), "head_fit": "sgd", "log_poll_interval_s": 0.05}
    with TestClient(create_app(Settings(**common, **durable, head_lr=1e30))) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, "ready", timeout=60)
        for i in range(3):
            update = {"prompts": PROMPTS, "rewards": [[1.0], [0.0]]}
            client.post("/v1/update", json=update, headers={"Idempotency-Key": f"k{i}"})
        detail = client.post("/v1/score", json={"prompts": PROMPTS}).json()["detail"]
        assert "diverged" in detail and "delete" not in detail, detail
        assert "restart the service with a lower --head-lr" in detail, detail
        assert client.delete("/v1/runs/default").status_code == 409
    with TestClient(create_app(Settings(**common, **durable, head_lr=1e-3))) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, "ready", timeout=60)
        assert client.get("/readyz").json()["problems"] == []
        served = client.post("/v1/score", json={"prompts": PROMPTS})
        assert served.status_code == 200, served.text
        assert served.json()["model_version"] >= 1  # its logged update, at the new rate
