"""Issue 31.1 (the applier's half): an update that raises while it is applied fails its own
run only. The applier used to abort its pass at that run, so every run after it got no
update applied (503 "not applied yet") while ``/readyz`` said ok, and after a restart the
replay raised and the whole service was ``failed`` (every run 503, the bad run not even
deletable).

The bad entry is written straight into the run's real Redis log, as a bug or a crash in a
writer would leave it: a body the applier cannot apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from sweetspot_service.testing import RedisServer, ServiceProcess

PROMPTS = ["What is 3 + 4?", "What is 12 * 12?"]


@pytest.fixture
def service(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> Iterator[ServiceProcess]:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--log-poll-interval-s", "0.1", "--update-timeout-s", "15"]
    process = ServiceProcess(args, tmp_path / "service.log").start()
    yield process
    process.kill()


def poison(redis_server: RedisServer, run: str) -> None:
    """Append an entry that cannot be applied (rewards for no prompt) to ``run``'s log, with
    the next sequence number, as the store's append script would."""
    r = redis.Redis(port=redis_server.port, decode_responses=True)
    incarnation = r.hget("sweetspot:incarnations", run)
    assert incarnation, "the run is listed in the store"
    prefix = f"sweetspot:{{{run}}}:{incarnation}:"
    seq = r.incr(prefix + "seq")
    body = '{"prompts":["What is 1 + 1?"],"rewards":[],"steps":1}'
    r.xadd(prefix + "wal", {"seq": seq, "key": "crafted", "body": body})
    r.close()


def update(url: str, run: str, key: str) -> httpx.Response:
    body = {"prompts": PROMPTS, "rewards": [[1.0], [0.0]], "run": run}
    return httpx.post(f"{url}/v1/update", json=body, headers={"Idempotency-Key": key}, timeout=60)


def failed_problems(url: str) -> list[str]:
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text  # the service stays ready
    return [p for p in ready.json()["problems"] if "'bad'" in p and "failed" in p]


def test_an_update_that_raises_fails_its_own_run_only(
    service: ServiceProcess, redis_server: RedisServer
) -> None:
    for name in ("bad", "good"):  # "good" after "bad": the pass used to stop before it
        assert httpx.post(f"{service.url}/v1/runs", json={"name": name}).status_code == 201
    poison(redis_server, "bad")

    answer = update(service.url, "good", "g1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == 1

    problems = failed_problems(service.url)
    assert problems and "ValidationError" in problems[0] and "delete" in problems[0]
    scored = httpx.post(f"{service.url}/v1/score", json={"prompts": PROMPTS, "run": "bad"})
    assert scored.status_code == 503 and "delete" in scored.text, scored.text
    refused = update(service.url, "bad", "b1")
    assert refused.status_code == 409 and "failed" in refused.text, refused.text

    service.kill()  # the replay meets the same entry: the run fails again, not the service
    service.start()
    assert failed_problems(service.url)
    answer = update(service.url, "good", "g2")
    assert answer.status_code == 200 and answer.json()["model_version"] == 2, answer.text
    assert httpx.delete(f"{service.url}/v1/runs/bad").status_code == 204
    assert failed_problems(service.url) == []
    assert httpx.post(f"{service.url}/v1/runs", json={"name": "bad"}).status_code == 201
    assert update(service.url, "bad", "b2").json()["model_version"] == 1
