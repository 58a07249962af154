"""Real servers for tests and benchmarks: redis-server and sweetspot-serve processes that
can be killed and restarted (crash tests), each on a free loopback port.

Both wait for readiness by polling with a deadline, never by a fixed sleep. Users can use
them too, to test their trainer against a real service.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` until true; ``TimeoutError`` after ``timeout`` s, ``RuntimeError``
    as soon as ``process`` (if given) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {process.returncode}")
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


class RedisServer:
    """``redis-server`` on a free loopback port, durable (AOF, fsync on every write)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed; `make test` installs it (apt-get install "
                "redis-server), or install it yourself"
            )
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--appendonly", "yes"]
        command += ["--appendfsync", "always", "--save", "", "--daemonize", "no"]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                return False

        wait_until(up, "redis-server up", timeout=30, process=self.process)
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ServiceProcess:
    """``sweetspot-serve`` on a fixed port (kept across restarts), output appended to a log."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.args = args
        self.log_path = log_path
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 120) -> ServiceProcess:
        """Start it and wait until ready; ``RuntimeError`` if it exits or fails to load."""
        command = [sys.executable, "-m", "sweetspot_service.cli", "--port", str(self.port)]
        command += ["--log-level", "warning", *self.args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        what = f"sweetspot-serve ready (log: {self.log_path})"
        wait_until(self.ready, what, timeout=timeout, process=self.process)
        return self

    def ready(self) -> bool:
        try:
            answer = httpx.get(f"{self.url}/readyz", timeout=2)
        except httpx.TransportError:
            return False
        if answer.status_code == 503 and answer.json().get("status") == "failed":
            raise RuntimeError(
                f"sweetspot-serve failed to load: {answer.json().get('detail')} "
                f"(log: {self.log_path})"
            )
        return answer.status_code == 200

    def wait_admitted(self, kind: str, *, timeout: float = 30) -> None:
        """Wait until exactly one ``kind`` request ("score" or "update") is in flight, as
        the admission gauge on /metrics reports it."""
        line = f'sweetspot_admitted_requests{{kind="{kind}"}} 1.0'
        wait_until(
            lambda: line in httpx.get(f"{self.url}/metrics").text,
            f"the {kind} request admitted",
            timeout=timeout,
            interval=0.01,
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait up to ``timeout`` s for the drain (``TimeoutExpired`` after)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, and SIGKILL if it has not finished within ``timeout`` s."""
        if self.process is None:
            return
        try:
            self.terminate(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_bytes(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024
