"""Leases on selections (issue 30, item 2): workers selecting at once get different prompts,
a report returns its prompts to the pool, a lost lease ends by itself, and on Redis the
leases hold across replicas. A real sweetspot-serve on both stores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sweetspot_client import PromptCurriculum, SweetspotClient
from sweetspot_service.testing import RedisServer, ServiceProcess

POOL = [f"What is {i} plus {2 * i + 1}?" for i in range(6)]


@pytest.fixture(scope="module", params=["memory", "redis"])
def replicas(
    request: pytest.FixtureRequest, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """One service on the in-memory store; two replicas on one Redis."""
    folder = tmp_path_factory.mktemp(f"leases-{request.param}")
    args = ["--backbone", str(tiny_llama)]
    if request.param == "memory":
        process = ServiceProcess(args, folder / "service.log").start()
        yield [process.url]
        process.kill()
        return
    redis = RedisServer(folder / "redis").start()
    args += ["--redis-url", redis.url]
    a = ServiceProcess(args, folder / "a.log").start()
    b = ServiceProcess(args, folder / "b.log").start()
    yield [a.url, b.url]
    a.kill()
    b.kill()
    redis.kill()


def select(url: str, run: str, m: int, lease_s: float | None = 600.0) -> dict[str, object]:
    body: dict[str, object] = {"prompts": POOL, "m": m, "run": run, "seed": 0}
    if lease_s is not None:
        body["lease_s"] = lease_s
    answer = httpx.post(f"{url}/v1/select", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def create(url: str, run: str) -> None:
    assert httpx.post(f"{url}/v1/runs", json={"name": run}, timeout=60).status_code == 201


def test_workers_selecting_at_once_get_different_prompts(replicas: list[str]) -> None:
    create(replicas[0], "workers")
    first = select(replicas[0], "workers", 2)
    second = select(replicas[-1], "workers", 2)  # the other replica, on Redis
    third = select(replicas[0], "workers", 2)
    chosen = [set(first["indices"]), set(second["indices"]), set(third["indices"])]  # type: ignore[call-overload]
    assert (first["leased"], second["leased"], third["leased"]) == (2, 2, 2)
    assert len(chosen[0] | chosen[1] | chosen[2]) == 6  # the pool of 6, three disjoint pairs
    full = select(replicas[-1], "workers", 2)  # nothing free: still m prompts, none leased
    assert full["leased"] == 0 and len(full["indices"]) == 2  # type: ignore[arg-type]
    plain = select(replicas[0], "workers", 2, lease_s=None)  # no lease asked: leases ignored
    assert plain["leased"] is None


def test_a_report_returns_its_prompts_to_the_pool(replicas: list[str]) -> None:
    create(replicas[0], "reported")
    first = select(replicas[0], "reported", 3)
    returned = [POOL[i] for i in first["indices"]]  # type: ignore[attr-defined]
    update = {"prompts": returned, "rewards": [[1.0, 0.0]] * 3, "run": "reported"}
    assert httpx.post(f"{replicas[-1]}/v1/update", json=update, timeout=60).status_code == 200
    again = select(replicas[0], "reported", 6)
    assert again["leased"] == 6  # the 3 reported and the 3 never leased


def test_a_lost_lease_ends_by_itself(replicas: list[str]) -> None:
    create(replicas[0], "expiring")
    assert select(replicas[0], "expiring", 6, lease_s=0.5)["leased"] == 6
    deadline = time.monotonic() + 60
    while select(replicas[-1], "expiring", 1, lease_s=600)["leased"] != 1:
        assert time.monotonic() < deadline, "the 0.5 s leases never ended"
        time.sleep(0.1)


@pytest.mark.parametrize("lease_s", [0, -1, 86_401, "1"])
def test_a_bad_lease_is_a_422_naming_it(replicas: list[str], lease_s: object) -> None:
    body = {"prompts": POOL, "m": 1, "lease_s": lease_s}
    answer = httpx.post(f"{replicas[0]}/v1/select", json=body, timeout=60)
    assert answer.status_code == 422 and "lease_s" in answer.text


def test_two_curriculums_on_one_run_draw_different_prompts(replicas: list[str]) -> None:
    create(replicas[0], "curricula")
    batches = []
    for url in (replicas[0], replicas[-1]):
        with SweetspotClient(base_url=url, run="curricula", timeout=60) as client:
            curriculum = PromptCurriculum(client, POOL, m=3, k=2, seed=0, lease_s=600)
            batches.append(curriculum.next_batch())  # the same 6 candidates (same seed)
    assert not set(batches[0].prompts) & set(batches[1].prompts)
