"""Two sweetspot-serve replicas on one Redis: both follow the update log and the run list."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sweetspot_service.testing import RedisServer, ServiceProcess, wait_until

PROMPTS = [f"What is {a} * {b}?" for a in range(4) for b in range(3)]


def eventually(condition: Callable[[], bool]) -> None:
    wait_until(condition, "replicas converge", timeout=30)


@pytest.fixture
def replicas(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "2"]
    args += ["--log-poll-interval-s", "0.1"]
    a = ServiceProcess(args, tmp_path / "a.log").start()
    b = ServiceProcess(args, tmp_path / "b.log").start()
    yield a, b
    a.kill()
    b.kill()


def version(url: str, run: str = "default") -> int:
    answer = httpx.get(f"{url}/v1/runs/{run}")
    return int(answer.json()["model_version"]) if answer.status_code == 200 else -1


def test_updates_through_one_replica_reach_the_other(
    replicas: tuple[ServiceProcess, ServiceProcess],
) -> None:
    a, b = replicas
    for i in range(7):  # checkpoints (and log trims) on both replicas meanwhile
        target = a if i % 2 == 0 else b
        body = {"prompts": PROMPTS[i : i + 3], "rewards": [[1.0], [0.0], [float(i % 2)]]}
        answer = httpx.post(f"{target.url}/v1/update", json=body, timeout=30)
        assert answer.status_code == 200 and answer.json()["model_version"] == i + 1
    eventually(lambda: version(a.url) == version(b.url) == 7)
    score_a = httpx.post(f"{a.url}/v1/score", json={"prompts": PROMPTS}).json()["scores"]
    score_b = httpx.post(f"{b.url}/v1/score", json={"prompts": PROMPTS}).json()["scores"]
    assert score_a == pytest.approx(score_b, abs=1e-5)
    assert score_a != pytest.approx([0.5] * len(PROMPTS), abs=1e-4)  # it did learn


def test_runs_created_or_deleted_on_one_replica_follow_on_the_other(
    replicas: tuple[ServiceProcess, ServiceProcess],
) -> None:
    a, b = replicas
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "shared"}).status_code == 201
    eventually(lambda: version(b.url, "shared") == 0)
    body = {"prompts": PROMPTS[:2], "rewards": [[1.0], [0.0]], "run": "shared"}
    assert httpx.post(f"{b.url}/v1/update", json=body, timeout=30).status_code == 200
    eventually(lambda: version(a.url, "shared") == 1)
    assert httpx.delete(f"{b.url}/v1/runs/shared").status_code == 204
    eventually(lambda: httpx.get(f"{a.url}/v1/runs/shared").status_code == 404)


def test_a_paused_replica_catches_up_because_trimming_waits_for_it(
    replicas: tuple[ServiceProcess, ServiceProcess],
) -> None:
    a, b = replicas
    eventually(lambda: version(b.url) == 0)
    assert b.process is not None
    b.process.send_signal(signal.SIGSTOP)  # b stops applying; a checkpoints and trims
    try:
        for i in range(6):
            body = {"prompts": PROMPTS[i : i + 2], "rewards": [[1.0], [0.0]]}
            assert httpx.post(f"{a.url}/v1/update", json=body, timeout=30).status_code == 200
        assert httpx.get(f"{a.url}/v1/runs/default").json()["checkpointed_version"] >= 4
    finally:
        b.process.send_signal(signal.SIGCONT)
    eventually(lambda: version(b.url) == 6)
    assert httpx.get(f"{b.url}/v1/runs/default").json()["error"] is None


def test_a_replica_away_past_the_ttl_continues_from_the_shared_checkpoint(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "2"]
    args += ["--log-poll-interval-s", "0.1", "--replica-ttl-s", "0.5"]
    a = ServiceProcess(args, tmp_path / "a.log").start()
    b = ServiceProcess(args, tmp_path / "b.log").start()
    try:
        eventually(lambda: version(b.url) == 0)
        assert b.process is not None
        b.process.send_signal(signal.SIGSTOP)  # b goes quiet for longer than the TTL ...
        try:
            time.sleep(1.0)
            for i in range(6):  # ... so a checkpoints and trims the log past b
                body = {"prompts": PROMPTS[i : i + 2], "rewards": [[1.0], [0.0]]}
                answer = httpx.post(f"{a.url}/v1/update", json=body, timeout=30)
                assert answer.status_code == 200
            # The checkpoint is written after the answer, at the end of the applier's pass.
            eventually(
                lambda: httpx.get(f"{a.url}/v1/runs/default").json()["checkpointed_version"] == 6
            )
        finally:
            b.process.send_signal(signal.SIGCONT)
        eventually(lambda: version(b.url) == 6)
        assert httpx.get(f"{b.url}/v1/runs/default").json()["error"] is None
        score_a = httpx.post(f"{a.url}/v1/score", json={"prompts": PROMPTS}).json()["scores"]
        score_b = httpx.post(f"{b.url}/v1/score", json={"prompts": PROMPTS}).json()["scores"]
        assert score_a == pytest.approx(score_b, abs=1e-5)
        # Updates keep flowing through the replica that caught up.
        body = {"prompts": PROMPTS[:2], "rewards": [[0.0], [1.0]]}
        assert httpx.post(f"{b.url}/v1/update", json=body, timeout=30).json()["model_version"] == 7
        eventually(lambda: version(a.url) == 7)
    finally:
        a.kill()
        b.kill()
