"""Issue 19.1-19.5: deleting and creating runs across two replicas on one Redis and one
checkpoint folder. A run created again under a deleted name must start empty, whatever the
other replica still holds or does (appends, shutdown checkpoints), and a delete that cannot
remove every file must say so without stranding the run.

The replicas poll the shared run list only every 2 s, so each test acts on the second
replica while it still believes in the deleted incarnation: the window the findings used.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import redis

from sweetspot_service.testing import RedisServer, ServiceProcess, wait_until

PROMPTS = ["What is 3 + 4?", "What is 12 * 12?"]
SLOW_SYNC = ["--log-poll-interval-s", "2"]

Replicas = Callable[..., tuple[ServiceProcess, ServiceProcess]]
ReadOnly = Callable[[Path], AbstractContextManager[None]]  # conftest.read_only_folder


@pytest.fixture
def replicas(tiny_llama: Path, redis_server: RedisServer, tmp_path: Path) -> Iterator[Replicas]:
    """Start two replicas sharing Redis and ``tmp_path / "ckpt"``, with extra flags."""
    started: list[ServiceProcess] = []

    def start(*extra: str) -> tuple[ServiceProcess, ServiceProcess]:
        args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
        args += ["--checkpoint-dir", str(tmp_path / "ckpt"), *SLOW_SYNC, *extra]
        for name in ("a", "b"):
            started.append(ServiceProcess(args, tmp_path / f"{name}.log").start())
        return started[0], started[1]

    yield start
    for service in started:
        service.kill()


def run_info(url: str, run: str) -> dict[str, object] | None:
    answer = httpx.get(f"{url}/v1/runs/{run}", timeout=10)
    return answer.json() if answer.status_code == 200 else None


def update(url: str, run: str, rewards: list[list[float]], key: str) -> httpx.Response:
    body = {"prompts": PROMPTS[: len(rewards)], "rewards": rewards, "run": run}
    return httpx.post(f"{url}/v1/update", json=body, headers={"Idempotency-Key": key}, timeout=30)


def stats(url: str, run: str) -> list[int]:
    answer = httpx.post(f"{url}/v1/stats", json={"prompts": PROMPTS, "run": run}, timeout=10)
    assert answer.status_code == 200, answer.text
    return [s["count"] for s in answer.json()["stats"]]


def wait_version(service: ServiceProcess, run: str, version: int) -> None:
    def there() -> bool:
        info = run_info(service.url, run)
        return info is not None and info["model_version"] == version

    wait_until(there, f"run {run} at version {version} on {service.url}", timeout=30)


def checkpoints(folder: Path, run: str) -> list[Path]:
    return sorted((folder / "runs" / run).rglob("*.pt"))


def assert_starts_empty(a: ServiceProcess, b: ServiceProcess, run: str) -> None:
    """The run just created again: version 0 and no statistics on both replicas, and its
    first update is version 1 (not a 409 from an old log or checkpoint)."""
    wait_version(a, run, 0)
    wait_version(b, run, 0)
    assert stats(a.url, run) == [0, 0]
    answer = update(b.url, run, [[1.0]], "fresh-1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == 1
    wait_version(a, run, 1)
    assert stats(a.url, run) == [1, 0]
    for service in (a, b):
        assert run_info(service.url, run)["error"] is None  # type: ignore[index]


def test_an_append_on_one_replica_after_a_delete_on_the_other_is_refused(
    replicas: Replicas,
) -> None:
    """19.1: B had not yet seen A's delete; its append used to write X's log, sequence,
    idempotency record and statistics, so X created again started at version 1."""
    a, b = replicas()
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    assert update(a.url, "x", [[1.0], [0.0]], "old-1").status_code == 200
    wait_version(b, "x", 1)

    assert httpx.delete(f"{a.url}/v1/runs/x").status_code == 204
    late = update(b.url, "x", [[1.0], [1.0]], "late-1")
    assert late.status_code == 404, late.text  # "not accepted": and indeed nothing written
    assert "deleted" in late.json()["detail"]

    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    assert_starts_empty(a, b, "x")
    retried = update(a.url, "x", [[1.0], [1.0]], "late-1")  # the key is the new run's now
    assert retried.status_code == 200 and retried.json()["model_version"] == 2


def test_a_replica_that_has_not_polled_serves_the_run_created_again(
    replicas: Replicas,
) -> None:
    """B answered for the deleted incarnation until its next poll: version 1 and the old
    statistics, and its update to the new run was refused as "deleted" (a CI failure of
    the race test below). B now reads the run list on each request."""
    a, b = replicas()
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    assert update(a.url, "x", [[1.0], [0.0]], "old-1").status_code == 200
    wait_version(b, "x", 1)

    assert httpx.delete(f"{a.url}/v1/runs/x").status_code == 204
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    assert run_info(b.url, "x")["model_version"] == 0  # type: ignore[index]
    assert stats(b.url, "x") == [0, 0]
    answer = update(b.url, "x", [[1.0]], "new-1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == 1


def test_two_replicas_creating_one_run_one_wins(replicas: Replicas) -> None:
    """19.5: the second create, on the replica that has not seen the first, was a 201."""
    a, b = replicas()
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "twice"}).status_code == 201
    second = httpx.post(f"{b.url}/v1/runs", json={"name": "twice"})
    assert second.status_code == 409, second.text
    assert update(b.url, "twice", [[1.0]], "t-1").json()["model_version"] == 1
    wait_version(a, "twice", 1)  # both serve the one incarnation A made


def test_a_replica_stopped_right_after_a_delete_elsewhere_writes_no_checkpoint_of_it(
    replicas: Replicas, tmp_path: Path
) -> None:
    """19.3: B checkpointed the deleted run at shutdown; X created again loaded that
    checkpoint (version 3) and failed its first update with 409."""
    a, b = replicas("--checkpoint-every", "1000", "--checkpoint-interval-s", "3600")
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    for i in range(3):
        assert update(a.url, "x", [[1.0], [0.0]], f"u{i}").status_code == 200
    wait_version(b, "x", 3)

    assert httpx.delete(f"{a.url}/v1/runs/x").status_code == 204
    assert b.terminate(timeout=60) == -signal.SIGTERM  # after draining: apply, checkpoint
    assert checkpoints(tmp_path / "ckpt", "x") == []

    b.start()
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    assert_starts_empty(a, b, "x")


def test_a_delete_that_cannot_remove_the_checkpoint_says_so_and_retries(
    replicas: Replicas, tmp_path: Path, read_only_folder: ReadOnly
) -> None:
    """19.4: DELETE answered 500 with the run already gone from Redis and memory; a
    second DELETE gave 404, the checkpoint stayed, and X created again loaded it."""
    a, b = replicas("--checkpoint-every", "1")
    folder = tmp_path / "ckpt" / "runs" / "x"
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    for i in range(2):
        assert update(a.url, "x", [[1.0], [0.0]], f"u{i}").status_code == 200
    wait_until(lambda: checkpoints(tmp_path / "ckpt", "x") != [], "checkpoint", timeout=30)
    wait_version(b, "x", 2)

    with read_only_folder(folder):
        deleted = httpx.delete(f"{a.url}/v1/runs/x")
        assert deleted.status_code == 204, deleted.text  # gone from the API, not a 500
        assert run_info(a.url, "x") is None
        ready = httpx.get(f"{a.url}/readyz").json()
        assert ready["ready"] is True and ready["degraded"] is True
        leftover = [p for p in ready["problems"] if "'x'" in p and "deleted" in p]
        assert leftover and str(folder) in leftover[0], ready["problems"]
        assert checkpoints(tmp_path / "ckpt", "x") != []  # really still there
        a.kill()  # the tombstone outlives the replica that deleted: still reported, retried
        a.start()
        assert any(
            "'x'" in p and "deleted" in p for p in httpx.get(f"{a.url}/readyz").json()["problems"]
        )

        # Created again meanwhile, the run starts empty: it never reads the old files.
        assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
        wait_version(b, "x", 0)
        assert run_info(a.url, "x")["model_version"] == 0  # type: ignore[index]

    def collected() -> bool:
        problems = httpx.get(f"{a.url}/readyz").json()["problems"]
        return not any("deleted" in p for p in problems)

    wait_until(collected, "the leftover checkpoint removed once writable", timeout=30)
    assert checkpoints(tmp_path / "ckpt", "x") == []
    assert_starts_empty(a, b, "x")


def test_a_run_created_on_one_replica_is_found_at_once_on_the_other(replicas: Replicas) -> None:
    """19.13: B answered 404 for 1.0-1.4 s after A created the run (here up to 2 s)."""
    a, b = replicas()
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "new"}).status_code == 201
    answer = update(b.url, "new", [[1.0]], "n-1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == 1


def test_updates_in_flight_during_a_delete_leave_nothing_behind(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    """19.2: a delete racing with updates left per-prompt or ``applied`` keys behind, and
    the run created again showed the old prompts' counts."""
    a, b = replicas()
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    wait_version(b, "x", 0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        racing = [
            pool.submit(update, (a, b)[i % 2].url, "x", [[1.0], [0.0]], f"r{i}") for i in range(8)
        ]
        deleted = httpx.delete(f"{a.url}/v1/runs/x", timeout=30)
        answers = [f.result() for f in racing]
    assert deleted.status_code == 204
    assert {r.status_code for r in answers} <= {200, 404}, [r.text for r in answers]

    store = redis.Redis.from_url(redis_server.url, decode_responses=True)

    def only_score_cache_left() -> bool:  # a score in flight may cache once; it expires
        return all(":scores:" in key for key in store.keys("sweetspot:{x}:*"))

    wait_until(only_score_cache_left, "the deleted run's keys collected", timeout=30)
    assert httpx.post(f"{a.url}/v1/runs", json={"name": "x"}).status_code == 201
    assert_starts_empty(a, b, "x")
