"""Two replicas on one Redis behind a real HAProxy, running deploy/haproxy/haproxy.cfg itself.

Trainers talk to the balancer only, with SweetspotClient's default retries and one
idempotency key per update. One replica is SIGKILLed while HAProxy has a request in flight on
it, then restarted. The test proves: clients see only errors they retry (no exception
escapes); no acknowledged update is lost or applied twice (the acknowledged versions are
exactly 1..N, both replicas end at N, per-prompt counts match what was acknowledged); and the
two replicas, asked directly, score alike once both are at N.
"""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sweetspot_client import SweetspotClient
from sweetspot_service.testing import (
    RedisServer,
    ServiceProcess,
    free_port,
    installed_tool,
    wait_until,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
PROMPTS = [f"What is {a} * {b}?" for a in range(5) for b in range(4)]
RETRIED = {"408", "429", "500", "502", "503", "504", "transport"}  # as Retries says
UPDATE_OK = 'sweetspot_http_requests_total{method="POST",route="/v1/update",status="200"}'


class HAProxy:
    """``haproxy`` in the foreground with the repository's config, on loopback ports."""

    def __init__(self, directory: Path, replicas: tuple[ServiceProcess, ServiceProcess]) -> None:
        self.binary = installed_tool("haproxy", "haproxy")
        self.directory = directory
        self.port, self.stats_port = free_port(), free_port()
        a, b = (f"127.0.0.1:{replica.port}" for replica in replicas)
        self.env = {"LB_REPLICA_A": a, "LB_REPLICA_B": b}
        self.env |= {"LB_BIND": f"127.0.0.1:{self.port}"}
        self.env |= {"LB_STATS_BIND": f"127.0.0.1:{self.stats_port}"}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "-db", "-f", str(HAPROXY_CONFIG)]
        with (self.directory / "haproxy.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ | self.env
            )
        wait_until(lambda: self.up("a") and self.up("b"), "haproxy: both replicas up", timeout=60)
        return self

    def server(self, name: str) -> dict[str, str]:
        """The stats row of server ``name`` (a or b): ``status`` UP/DOWN, ``scur`` requests
        in flight on it, ..."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text
        except httpx.TransportError:
            return {}
        rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
        return next((r for r in rows if r["pxname"] == "replicas" and r["svname"] == name), {})

    def up(self, name: str) -> bool:
        return self.server(name).get("status") == "UP"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Recording(httpx.HTTPTransport):
    """Notes every answer that is not a success, and every transport error, as
    ``'<method> <path> <status>'`` or ``'<method> <path> transport <error>'``."""

    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        where = f"{request.method} {request.url.path}"
        try:
            response = super().handle_request(request)
        except httpx.TransportError as exc:
            self.seen.append(f"{where} transport {type(exc).__name__}")
            raise
        if not response.is_success:
            self.seen.append(f"{where} {response.status_code}")
        return response


@dataclass
class Traffic:
    """What the trainers did: acknowledged updates, answers they retried, what escaped."""

    acknowledged: list[tuple[list[str], list[list[float]], int]] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    escaped: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def trainer(self, url: str, index: int) -> None:
        rng = random.Random(index)
        with SweetspotClient(base_url=url, timeout=60, transport=Recording(self.seen)) as client:
            step = 0
            while not self.stop.is_set():
                prompts = rng.sample(PROMPTS, 3)
                rewards = [[float(rng.random() < 0.5) for _ in range(2)] for _ in prompts]
                try:
                    key = f"trainer-{index}-{step}"
                    answer = client.update(prompts, rewards, idempotency_key=key)
                    self.acknowledged.append((prompts, rewards, answer.model_version))
                    client.score(prompts)
                except BaseException as exc:
                    self.escaped.append(exc)
                    return
                step += 1

    def wait_for(self, count: int, what: str) -> None:
        wait_until(lambda: len(self.acknowledged) >= count or bool(self.escaped), what, timeout=180)
        assert not self.escaped, self.escaped


def version(replica: ServiceProcess) -> int:
    try:
        answer = httpx.get(f"{replica.url}/v1/runs/default", timeout=10)
    except httpx.TransportError:
        return -1
    return int(answer.json()["model_version"]) if answer.status_code == 200 else -1


@pytest.fixture
def topology(
    tiny_llama: Path, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, ServiceProcess, HAProxy]]:
    args = ["--backbone", str(tiny_llama), "--redis-url", redis_server.url]
    args += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "4"]
    args += ["--log-poll-interval-s", "0.1"]
    a = ServiceProcess(args, tmp_path / "a.log").start()
    b = ServiceProcess(args, tmp_path / "b.log").start()
    haproxy = HAProxy(tmp_path / "haproxy", (a, b))
    try:
        yield a, b, haproxy.start()
    finally:
        haproxy.kill()
        a.kill()
        b.kill()


def test_a_replica_killed_mid_request_behind_haproxy_loses_and_repeats_nothing(
    topology: tuple[ServiceProcess, ServiceProcess, HAProxy],
) -> None:
    a, b, haproxy = topology
    traffic = Traffic()
    trainers = [threading.Thread(target=traffic.trainer, args=(haproxy.url, i)) for i in range(2)]
    for thread in trainers:
        thread.start()
    try:
        traffic.wait_for(6, "updates through the balancer")
        assert a.process is not None

        def frozen_mid_request() -> bool:
            """Replica a stopped while HAProxy has a request in flight on it."""
            assert a.process is not None
            a.process.send_signal(signal.SIGSTOP)
            if int(haproxy.server("a").get("scur") or 0) > 0:
                return True
            a.process.send_signal(signal.SIGCONT)
            return False

        wait_until(frozen_mid_request, "a request in flight on replica a", timeout=180)
        a.kill()
        killed_at = len(traffic.acknowledged)
        traffic.wait_for(killed_at + 6, "updates through b alone")
        wait_until(lambda: not haproxy.up("a"), "haproxy marks a down", timeout=60)

        a.start(timeout=180)  # same port: loads the checkpoint, replays the log after it
        wait_until(lambda: haproxy.up("a"), "haproxy marks a up again", timeout=60)
        wait_until(lambda: (a.metric(UPDATE_OK) or 0) >= 2, "a serves updates again", timeout=180)
        traffic.wait_for(len(traffic.acknowledged) + 4, "updates after the restart")
    finally:
        traffic.stop.set()
        for thread in trainers:
            thread.join(timeout=300)
    assert not traffic.escaped, traffic.escaped

    # Clients saw errors (the requests in flight on a; HAProxy 2.6 closes the client's
    # connection without an answer then, not 502), and only errors they retry.
    assert traffic.seen, "no client noticed the kill"
    assert all(s.split()[2] in RETRIED for s in traffic.seen), traffic.seen

    # No acknowledged update lost or applied twice.
    count = len(traffic.acknowledged)
    versions = sorted(v for _, _, v in traffic.acknowledged)
    assert versions == list(range(1, count + 1)), versions
    wait_until(lambda: version(a) == version(b) == count, "both replicas at N", timeout=180)
    expected = Counter[str]()
    for prompts, rewards, _ in traffic.acknowledged:
        for prompt, observed in zip(prompts, rewards, strict=True):
            expected[prompt] += len(observed)
    scores = []
    for replica in (a, b):
        with SweetspotClient(base_url=replica.url, timeout=60) as client:
            stats = client.stats(PROMPTS).stats
            assert [s.count for s in stats] == [expected[p] for p in PROMPTS], replica.url
            scores.append(client.score(PROMPTS).scores)
    assert scores[0] == pytest.approx(scores[1], abs=1e-5)
