"""Bearer keys (read/write/public), 429 admission, truncation: a real sweetspot-serve."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sweetspot_service.testing import ServiceProcess

WRITE, READ = "write-key-0123456789", "read-key-0123456789"


@pytest.fixture(scope="module")
def secured(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("auth") / "service.log"
    args = ["--backbone", str(tiny_llama), "--max-prompt-chars", "50"]
    args += ["--max-update-prompt-steps", "2000"]
    env = {"SWEETSPOT_API_KEYS": json.dumps([WRITE]), "SWEETSPOT_READ_API_KEYS": json.dumps([READ])}
    process = ServiceProcess(args, log, env=env).start()
    yield process.url
    process.kill()


def call(url: str, method: str, path: str, key: str | None, body: object = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=30)


SCORE = {"prompts": ["What is 1 + 1?"]}
UPDATE = {"prompts": ["What is 1 + 1?"], "rewards": [[1.0]]}


def test_public_paths_need_no_key(secured: str) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert call(secured, "GET", path, None).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/score", SCORE),
        ("POST", "/v1/update", UPDATE),
        ("GET", "/v1/runs", None),
        ("POST", "/v1/runs", {"name": "x"}),
        ("GET", "/openapi.json", None),
        ("GET", "/no-such-path", None),
    ],
)
def test_every_other_route_needs_a_key(secured: str, method: str, path: str, body: object) -> None:
    for key in (None, "wrong-key", WRITE[:-1], WRITE + "x"):
        answer = call(secured, method, path, key, body)
        assert answer.status_code == 401, (key, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"


def test_read_key_reads_but_cannot_write(secured: str) -> None:
    assert call(secured, "POST", "/v1/score", READ, SCORE).status_code == 200
    assert call(secured, "GET", "/v1/runs", READ).status_code == 200
    assert call(secured, "POST", "/v1/stats", READ, SCORE).status_code == 200
    for method, path, body in [("POST", "/v1/update", UPDATE), ("POST", "/v1/runs", {"name": "r"})]:
        answer = call(secured, method, path, READ, body)
        assert answer.status_code == 403 and "only read" in answer.json()["detail"]
    assert call(secured, "POST", "/v1/update", WRITE, UPDATE).status_code == 200


@pytest.fixture(scope="module")
def metrics_keyed(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("metrics-key") / "service.log"
    env = {
        "SWEETSPOT_API_KEYS": json.dumps([WRITE]),
        "SWEETSPOT_READ_API_KEYS": json.dumps([READ]),
        "SWEETSPOT_METRICS_API_KEYS": json.dumps([METRICS]),
    }
    process = ServiceProcess(["--backbone", str(tiny_llama)], log, env=env).start()
    yield process.url
    process.kill()


METRICS = "metrics-key-0123456789"


def test_a_metrics_key_protects_metrics_and_may_read_nothing_else(metrics_keyed: str) -> None:
    url = metrics_keyed
    for path in ("/healthz", "/readyz"):
        assert call(url, "GET", path, None).status_code == 200
    for key in (None, "wrong-key", METRICS + "x"):
        assert call(url, "GET", "/metrics", key).status_code == 401
    for key in (METRICS, READ, WRITE):
        answer = call(url, "GET", "/metrics", key)
        assert answer.status_code == 200 and 'sweetspot_model_version{run="default"}' in answer.text
    for method, path, body in [
        ("POST", "/v1/score", SCORE),
        ("GET", "/v1/runs", None),
        ("GET", "/v1/runs/default", None),
        ("POST", "/v1/update", UPDATE),
    ]:
        answer = call(url, method, path, METRICS, body)
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"] == "this API key may only read /metrics"


def test_long_prompts_rejected_unless_truncation_is_asked(secured: str) -> None:
    long = {"prompts": ["x" * 60]}
    rejected = call(secured, "POST", "/v1/score", READ, long)
    assert rejected.status_code == 422 and '"truncate": true' in rejected.json()["detail"]
    cut = call(secured, "POST", "/v1/score", READ, {**long, "truncate": True})
    same = call(secured, "POST", "/v1/score", READ, {"prompts": ["x" * 50]})
    assert cut.status_code == 200 and cut.json()["scores"] == same.json()["scores"]


def test_full_admission_queue_answers_429_before_reading_the_body(
    tiny_llama: Path, tmp_path: Path
) -> None:
    args = ["--backbone", str(tiny_llama), "--max-queued-scores", "1", "--batch-wait-ms", "500"]
    process = ServiceProcess(args, tmp_path / "service.log").start()
    try:
        # The first request holds the only slot while the batcher waits 500 ms for company.
        first: list[httpx.Response] = []
        holder = threading.Thread(
            target=lambda: first.append(httpx.post(f"{process.url}/v1/score", json=SCORE))
        )
        holder.start()
        process.wait_admitted("score")
        answer = httpx.post(f"{process.url}/v1/score", content=b"{not even json")
        assert answer.status_code == 429  # not 422: the body was never read
        assert answer.headers["retry-after"] == "1"
        holder.join()
        assert first[0].status_code == 200
        assert httpx.get(f"{process.url}/healthz").status_code == 200
        metrics = httpx.get(f"{process.url}/metrics").text
        assert 'sweetspot_rejected_requests_total{reason="overloaded"}' in metrics
    finally:
        process.kill()


def test_one_update_cannot_claim_the_model_thread_for_long(secured: str) -> None:
    body = {"prompts": ["a", "b", "c"], "rewards": [[1.0]] * 3, "steps": 64}
    answer = call(secured, "POST", "/v1/update", WRITE, body)
    assert answer.status_code == 200  # 192 prompt-steps: within the bound set below
    bigger = {"prompts": [f"q{i}" for i in range(40)], "rewards": [[1.0]] * 40, "steps": 64}
    answer = call(secured, "POST", "/v1/update", WRITE, bigger)
    assert answer.status_code == 422 and "max_update_prompt_steps" in answer.json()["detail"]
