"""sweetspot-serve on a real redis-server: durable updates, idempotency, runs, restarts."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from sweetspot_client import Retries, SweetspotClient
from sweetspot_service.testing import RedisServer, ServiceProcess

PROMPTS = ["What is 2 + 2?", "Prove Fermat's last theorem.", "Name a prime.", "Sum 1..10."]


@pytest.fixture
def service(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> Iterator[ServiceProcess]:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "3"]
    process = ServiceProcess(args, tmp_path / "service.log").start()
    yield process
    process.kill()


def post_update(
    url: str, key: str, rewards: list[list[float]], run: str = "default"
) -> httpx.Response:
    body = {"prompts": PROMPTS[: len(rewards)], "rewards": rewards, "run": run}
    return httpx.post(f"{url}/v1/update", json=body, headers={"Idempotency-Key": key}, timeout=60)


def test_same_key_is_applied_once_and_answered_identically(service: ServiceProcess) -> None:
    first = post_update(service.url, "key-1", [[1.0, 0.0], [0.0]])
    again = post_update(service.url, "key-1", [[1.0, 0.0], [0.0]])
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["model_version"] == 1
    with SweetspotClient(base_url=service.url) as client:  # counted once, from Redis
        first_stats, second_stats, unseen = client.stats(PROMPTS[:3]).stats
    assert (first_stats.count, first_stats.mean_reward, first_stats.last_version) == (2, 0.5, 1)
    assert (second_stats.count, second_stats.mean_reward) == (1, 0.0)
    assert (unseen.count, unseen.mean_reward) == (0, None)
    other_body = post_update(service.url, "key-1", [[1.0, 1.0], [0.0]])
    assert other_body.status_code == 409
    assert "different update body" in other_body.json()["detail"]
    assert httpx.get(f"{service.url}/v1/runs/default").json()["model_version"] == 1


def test_one_key_sent_100_times_at_once_is_applied_once(service: ServiceProcess) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(
            pool.map(lambda _: post_update(service.url, "same", [[1.0], [0.0]]), range(100))
        )
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert httpx.get(f"{service.url}/v1/runs/default").json()["model_version"] == 1


def test_sigkill_then_restart_replays_to_the_same_model(
    service: ServiceProcess, redis_server: RedisServer
) -> None:
    for i in range(7):
        assert post_update(service.url, f"k{i}", [[float(i % 2)], [1.0], [0.0]]).status_code == 200
    before = httpx.post(f"{service.url}/v1/score", json={"prompts": PROMPTS}).json()
    assert before["model_version"] == 7
    service.kill()
    service.start()
    after = httpx.post(f"{service.url}/v1/score", json={"prompts": PROMPTS}).json()
    assert after["model_version"] == 7
    assert after["scores"] == pytest.approx(before["scores"], abs=1e-6)
    info = httpx.get(f"{service.url}/v1/runs/default").json()
    assert info["checkpointed_version"] == 6  # checkpoint every 3; entry 7 came from the log
    # The log was trimmed at the checkpoint: only what the checkpoint does not hold is kept.
    kept = redis.Redis.from_url(redis_server.url).xlen("sweetspot:{default}:wal")
    assert kept == 2  # entry 6 (the trim bound) and 7
    # A retry of an update applied before the crash gets its original answer.
    assert post_update(service.url, "k6", [[0.0], [1.0], [0.0]]).json()["model_version"] == 7


def test_runs_have_their_own_models(service: ServiceProcess) -> None:
    with SweetspotClient(base_url=service.url, run="exp-a") as client:
        assert client.create_run("exp-a").model_version == 0
        client.update(PROMPTS[:2], [[1.0], [1.0]])
        assert client.get_run("exp-a").model_version == 1
        names = [r.name for r in client.list_runs().runs]
        assert names == ["default", "exp-a"]
    assert httpx.get(f"{service.url}/v1/runs/default").json()["model_version"] == 0
    unknown = httpx.post(f"{service.url}/v1/score", json={"prompts": ["x"], "run": "nope"})
    assert unknown.status_code == 404 and "POST /v1/runs" in unknown.json()["detail"]
    assert httpx.post(f"{service.url}/v1/runs", json={"name": "exp-a"}).status_code == 409
    assert httpx.post(f"{service.url}/v1/runs", json={"name": "bad name!"}).status_code == 422
    assert httpx.delete(f"{service.url}/v1/runs/default").status_code == 409
    assert httpx.delete(f"{service.url}/v1/runs/exp-a").status_code == 204
    assert httpx.get(f"{service.url}/v1/runs/exp-a").status_code == 404
    # Runs live in Redis: a restarted service knows them.
    assert httpx.post(f"{service.url}/v1/runs", json={"name": "exp-b"}).status_code == 201
    service.kill()
    service.start()
    assert [r["name"] for r in httpx.get(f"{service.url}/v1/runs").json()["runs"]] == [
        "default",
        "exp-b",
    ]


def test_redis_outage_scores_still_work_updates_503_then_recover(
    service: ServiceProcess, redis_server: RedisServer
) -> None:
    assert post_update(service.url, "before", [[1.0]]).status_code == 200
    redis_server.kill()
    score = httpx.post(f"{service.url}/v1/score", json={"prompts": PROMPTS}, timeout=30)
    assert score.status_code == 200
    down = post_update(service.url, "during", [[0.0]])
    assert down.status_code == 503 and down.headers["retry-after"] == "1"
    ready = httpx.get(f"{service.url}/readyz").json()
    assert ready["store"] == "redis-unavailable" and ready["ready"] is True
    redis_server.start()
    with SweetspotClient(base_url=service.url, retries=Retries(max_retries=20, maximum=1)) as c:
        result = c.update(PROMPTS[:1], [[0.0]], idempotency_key="during")
    assert result.model_version == 2


def test_sigterm_finishes_and_checkpoints(service: ServiceProcess, tmp_path: Path) -> None:
    for i in range(2):  # below checkpoint-every: only a clean shutdown saves these
        assert post_update(service.url, f"t{i}", [[1.0]]).status_code == 200
    # uvicorn re-raises the signal once it has shut down cleanly: killed *by* SIGTERM, late.
    assert service.terminate(timeout=60) == -signal.SIGTERM
    service.start()
    info = httpx.get(f"{service.url}/v1/runs/default").json()
    assert info["model_version"] == info["checkpointed_version"] == 2


LONG_PROMPTS = [f"Question number {i}: what is {i} + {i}?" for i in range(128)]
LONG_UPDATE = {"prompts": LONG_PROMPTS, "rewards": [[1.0]] * 128, "steps": 16}


def post_during_sigterm(service: ServiceProcess, key: str) -> httpx.Response:
    """A long update (128 prompts × 16 steps, full mode: seconds on a CPU), then SIGTERM
    once it is admitted."""
    answers: list[httpx.Response] = []
    poster = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{service.url}/v1/update",
                json=LONG_UPDATE,
                headers={"Idempotency-Key": key},
                timeout=600,
            )
        )
    )
    poster.start()
    service.wait_admitted("update")
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    poster.join()
    return answers[0]


def drain_args(redis_server: RedisServer, tiny_llama: Path, tmp_path: Path) -> list[str]:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--train-mode", "full"]
    return [*args, "--max-update-prompt-steps", "100000"]


def test_sigterm_lets_an_in_flight_update_finish(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    # A budget no machine exhausts on this update: the drain must wait for it, however slow.
    args = [*drain_args(redis_server, tiny_llama, tmp_path), "--shutdown-timeout-s", "1200"]
    service = ServiceProcess(args, tmp_path / "drain.log").start()
    try:
        answer = post_during_sigterm(service, "long")
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == 1
        assert service.process is not None
        service.process.wait(timeout=60)
        service.start()
        info = httpx.get(f"{service.url}/v1/runs/default").json()
        assert info["model_version"] == info["checkpointed_version"] == 1
    finally:
        service.kill()


def test_sigterm_past_the_budget_answers_503_retry_and_the_update_survives(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    # A budget (0.1 s for requests) this update cannot meet: the answer must be an honest
    # 503, not a 500, and the accepted update must not be lost.
    args = [*drain_args(redis_server, tiny_llama, tmp_path), "--shutdown-timeout-s", "0.2"]
    service = ServiceProcess(args, tmp_path / "drain.log").start()
    try:
        answer = post_during_sigterm(service, "long")
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert "shutting down" in answer.json()["detail"]
        assert "same Idempotency-Key (long)" in answer.json()["detail"]
        assert service.process is not None
        service.process.wait(timeout=600)
        service.start()  # replays the accepted update
        assert httpx.get(f"{service.url}/v1/runs/default").json()["model_version"] == 1
        retried = httpx.post(
            f"{service.url}/v1/update",
            json=LONG_UPDATE,
            headers={"Idempotency-Key": "long"},
            timeout=60,
        )
        assert retried.status_code == 200 and retried.json()["model_version"] == 1  # once
    finally:
        service.kill()
