"""Warm starts: ``POST /v1/runs {"name": ..., "from": ...}`` against real services, alone
(in-memory store) and as two replicas on one Redis and one checkpoint folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sweetspot_client import NotFoundError, SweetspotClient
from sweetspot_service.testing import RedisServer, ServiceProcess, wait_until

PROMPTS = [f"What is {a} * {b}?" for a in range(4) for b in range(3)]
UNSEEN = [f"What is {a} + {a}?" for a in range(6)]


def _teach(client: SweetspotClient, updates: int = 4) -> None:
    for i in range(updates):
        batch = PROMPTS[3 * i : 3 * i + 3]
        client.update(batch, [[1.0, 1.0], [0.0, 1.0], [float(i % 2), 0.0]])


@pytest.fixture
def service(tiny_llama: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(["--backbone", str(tiny_llama)], tmp_path / "s.log").start()
    yield process
    process.kill()


def test_a_fork_starts_from_the_sources_model_at_version_0(service: ServiceProcess) -> None:
    with SweetspotClient(base_url=service.url, run="job-7") as job7:
        job7.create_run("job-7")
        _teach(job7)
        before = job7.score(PROMPTS + UNSEEN).scores
        info = job7.create_run("job-8", from_="job-7")
        assert info.name == "job-8" and info.model_version == 0
        with SweetspotClient(base_url=service.url, run="job-8") as job8:
            assert job8.score(PROMPTS + UNSEEN).scores == pytest.approx(before, abs=1e-6)
            assert job8.score(UNSEEN).scores != pytest.approx([0.5] * len(UNSEEN), abs=1e-3)
            # Issue 31.9: the rewards its scores come from are counted as its own.
            source = job7.stats(PROMPTS).stats
            assert [s.count for s in source] == [2] * len(PROMPTS)
            copied = job8.stats(PROMPTS).stats
            assert [(s.count, s.mean_reward) for s in copied] == [
                (s.count, s.mean_reward) for s in source
            ]
            assert {s.last_version for s in copied} == {0}  # before the fork's own updates
            job8.update(PROMPTS[:2], [[0.0], [0.0]])  # the fork learns on its own
            assert job8.get_run("job-8").model_version == 1
            assert [s.count for s in job8.stats(PROMPTS[:2]).stats] == [3, 3]
            calibration = job8.calibration("job-8")
            assert (calibration.first_seen.prompts, calibration.revisited.prompts) == (0, 2)
        assert job7.get_run("job-7").model_version == 4  # the source is untouched
        assert job7.score(PROMPTS + UNSEEN).scores == pytest.approx(before, abs=1e-9)
        fresh = job7.create_run("job-9")
        assert fresh.model_version == 0
        with SweetspotClient(base_url=service.url, run="job-9") as job9:
            assert job9.score(UNSEEN).scores == pytest.approx([0.5] * len(UNSEEN))


def test_a_fork_of_a_missing_run_is_refused_and_creates_nothing(service: ServiceProcess) -> None:
    with SweetspotClient(base_url=service.url) as client:
        with pytest.raises(NotFoundError, match="cannot fork run 'nope'"):
            client.create_run("job-8", from_="nope")
        assert "job-8" not in [r.name for r in client.list_runs().runs]
    bad = httpx.post(f"{service.url}/v1/runs", json={"name": "x", "from": "no/slash"})
    assert bad.status_code == 422


def test_a_fork_on_one_replica_scores_alike_on_the_other(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--log-poll-interval-s", "0.1"]
    a = ServiceProcess(args, tmp_path / "a.log").start()
    b = ServiceProcess(args, tmp_path / "b.log").start()
    try:
        with SweetspotClient(base_url=a.url, run="job-7") as on_a:
            on_a.create_run("job-7")
            _teach(on_a)
            on_a.create_run("job-8", from_="job-7")
            with SweetspotClient(base_url=a.url, run="job-8") as fork_a:
                expected = fork_a.score(PROMPTS + UNSEEN).scores
        with SweetspotClient(base_url=b.url, run="job-8") as fork_b:
            wait_until(
                lambda: "job-8" in [r.name for r in fork_b.list_runs().runs],
                "fork seen on b",
                timeout=30,
            )
            assert fork_b.get_run("job-8").model_version == 0
            copied = [s.count for s in fork_b.stats(PROMPTS).stats]
            assert copied == [2] * len(PROMPTS)  # issue 31.9, in the shared store
            assert fork_b.score(PROMPTS + UNSEEN).scores == pytest.approx(expected, abs=1e-5)
    finally:
        a.kill()
        b.kill()


def test_forking_on_a_shared_store_needs_a_checkpoint_folder(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    process = ServiceProcess(args, tmp_path / "s.log").start()
    try:
        with SweetspotClient(base_url=process.url) as client:
            client.create_run("job-7")
            answer = httpx.post(f"{process.url}/v1/runs", json={"name": "j8", "from": "job-7"})
            assert answer.status_code == 422 and "--checkpoint-dir" in answer.json()["detail"]
    finally:
        process.kill()


def test_the_trainer_forks_its_run_once_and_resumes_it_after(service: ServiceProcess) -> None:
    from sweetspot_trainer.config import TrainConfig
    from sweetspot_trainer.train import ensure_run

    with SweetspotClient(base_url=service.url, run="job-7") as client:
        client.create_run("job-7")
        _teach(client)
        ensure_run(client, "job-8", "job-7")
        with SweetspotClient(base_url=service.url, run="job-8") as job8:
            job8.update(PROMPTS[:1], [[1.0]])
        ensure_run(client, "job-8", "job-7")  # a restarted job: its own run, not a new fork
        assert client.get_run("job-8").model_version == 1
    with pytest.raises(ValueError, match="--service-run-from needs --service-url"):
        TrainConfig(service_run="job-8", service_run_from="job-7")
