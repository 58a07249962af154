"""Issue 31.4: ``--max-runs`` held per replica, so two replicas on one Redis at the limit both
accepted a new run (the store then listed more runs than the limit, and each replica answered
404 for the other's). The store decides it, atomically, for create, fork and import alike.

The replicas poll the run list only every 30 s, so the second one has not seen the first
one's run when it is asked for another: the window the finding used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from sweetspot_service.testing import RedisServer, ServiceProcess

Replicas = tuple[ServiceProcess, ServiceProcess]


@pytest.fixture
def replicas(tiny_llama: Path, redis_server: RedisServer, tmp_path: Path) -> Iterator[Replicas]:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--max-runs", "2"]
    args += ["--log-poll-interval-s", "30"]
    a = ServiceProcess(args, tmp_path / "a.log").start()
    b = ServiceProcess(args, tmp_path / "b.log").start()
    yield a, b
    a.kill()
    b.kill()


def refused_for_the_limit(answer: httpx.Response) -> None:
    assert answer.status_code == 409, answer.text
    assert "--max-runs is 2" in answer.json()["detail"], answer.text


def test_the_run_limit_holds_across_replicas(replicas: Replicas, redis_server: RedisServer) -> None:
    a, b = replicas
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "p"}).status_code == 201  # + default
    refused_for_the_limit(httpx.post(f"{b.url}/v1/runs", json={"name": "q"}))
    refused_for_the_limit(httpx.post(f"{b.url}/v1/runs", json={"name": "q", "from": "default"}))
    exported = httpx.get(f"{a.url}/v1/runs/default/export", timeout=60)
    assert exported.status_code == 200, exported.text
    imported = httpx.put(
        f"{b.url}/v1/runs/q/import",
        content=exported.content,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    refused_for_the_limit(imported)

    r = redis.Redis(port=redis_server.port, decode_responses=True)
    assert r.hkeys("sweetspot:incarnations") == ["p"]  # with default: 2, the limit
    r.close()
    assert not list((a.log_path.parent / "ckpt" / "runs").glob("q"))

    assert httpx.delete(f"{b.url}/v1/runs/p").status_code == 204
    assert httpx.post(f"{b.url}/v1/runs", json={"name": "q"}).status_code == 201
