"""Feature runs survive restarts and replay: the vectors are in the update log and the width
in the run list and the checkpoint, so a restarted service (in-memory store with a checkpoint
folder, or Redis) and a replica following the Redis log score alike."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from sweetspot_client import BadRequestError, Retries, SweetspotClient
from sweetspot_service.testing import RedisServer, ServiceProcess, wait_until

WIDTH = 8
RUN = "policy-features"


def rows(count: int, seed: int) -> tuple[list[str], list[list[float]], list[list[float]]]:
    """Prompts, vectors (the first number decides the reward) and rewards."""
    rng = random.Random(seed)
    prompts, vectors, rewards = [], [], []
    for i in range(count):
        signal = rng.uniform(-1.0, 1.0)
        prompts.append(f"problem {seed}-{i}")
        vectors.append([2.0 * signal, *(rng.gauss(0.0, 0.3) for _ in range(WIDTH - 1))])
        rewards.append([float(signal > 0)] * 3 + [float(rng.random() < 0.5)])
    return prompts, vectors, rewards


PROBE = rows(12, seed=999)


def client(url: str) -> SweetspotClient:
    return SweetspotClient(base_url=url, timeout=60, run=RUN, retries=Retries(max_retries=0))


def teach(url: str, first: int, last: int) -> None:
    with client(url) as c:
        for u in range(first, last):
            prompts, vectors, rewards = rows(8, seed=u)
            answer = c.update(prompts, rewards, features=vectors, idempotency_key=f"u{u}")
            assert answer.model_version == u + 1


def probe(url: str) -> tuple[list[float], int]:
    with client(url) as c:
        answer = c.score(PROBE[0], features=PROBE[1])
    return answer.scores, answer.model_version


def test_the_in_memory_store_restarts_from_the_checkpoint(tmp_path: Path) -> None:
    args = ["--backbone", "minilm", "--checkpoint-dir", str(tmp_path / "ckpt")]
    service = ServiceProcess(args, tmp_path / "service.log").start()
    try:
        with client(service.url) as c:
            c.create_run(RUN, feature_width=WIDTH)
        teach(service.url, 0, 5)
        before, version = probe(service.url)
        assert version == 5 and max(before) - min(before) > 0.5
        service.stop()  # SIGTERM: the run is checkpointed at version 5
        service.start()
        with client(service.url) as c:
            # The in-memory store forgot the run; creating it again continues its checkpoint,
            # which only a run of the same width may.
            with pytest.raises(BadRequestError, match="a feature run of width 8 in"):
                c.create_run(RUN, feature_width=16)
            with pytest.raises(BadRequestError, match="give feature_width 8"):
                c.create_run(RUN)
            info = c.create_run(RUN, feature_width=WIDTH)
            assert (info.model_version, info.feature_width) == (5, WIDTH)
        after, version = probe(service.url)
        assert version == 5
        assert after == pytest.approx(before, abs=1e-6)
        teach(service.url, 5, 6)  # the log continues at the next version
    finally:
        service.kill()


def test_redis_replays_the_log_and_a_replica_follows_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    args = ["--backbone", "minilm", "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "3"]
    args += ["--log-poll-interval-s", "0.1"]
    a = ServiceProcess(args, tmp_path / "a.log").start()
    b = ServiceProcess(args, tmp_path / "b.log")
    try:
        with client(a.url) as c:
            c.create_run(RUN, feature_width=WIDTH)
            c.create_run("empty-features", feature_width=4)
        teach(a.url, 0, 7)
        before, version = probe(a.url)
        assert version == 7 and max(before) - min(before) > 0.5

        a.kill()  # SIGKILL: checkpoint at 6, entry 7 only in the Redis log
        a.start()
        after, version = probe(a.url)
        assert version == 7
        assert after == pytest.approx(before, abs=1e-6)
        with client(a.url) as c:
            info = c.get_run(RUN)
            assert (info.checkpointed_version, info.feature_width) == (6, WIDTH)
            # A run with neither updates nor a checkpoint: its width came from Redis alone.
            assert c.get_run("empty-features").feature_width == 4
            assert c.get_run("default").feature_width is None

        b.start()  # a replica: the shared checkpoint, then it follows the log
        teach(a.url, 7, 8)

        def b_applied() -> bool:
            answer = httpx.get(f"{b.url}/v1/runs/{RUN}", timeout=10)
            return answer.status_code == 200 and answer.json()["model_version"] == 8

        wait_until(b_applied, "replica b applied update 8", timeout=60)
        assert httpx.get(f"{b.url}/v1/runs/{RUN}").json()["feature_width"] == WIDTH
        assert probe(b.url)[0] == pytest.approx(probe(a.url)[0], abs=1e-6)
    finally:
        a.kill()
        b.kill()
