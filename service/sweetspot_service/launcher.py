"""Start ``sweetspot-serve`` as a child process and wait until it is ready.

Product code: the trainer's embedded service (``sweetspot_trainer.service``) runs on it, and
so do the tests and benchmarks (``sweetspot_service.testing`` re-exports it). Readiness is
polled with a deadline (``wait_until``), never waited for with a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

__all__ = ["ServiceProcess", "free_port", "wait_until"]


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


class ServiceProcess:
    """``sweetspot-serve`` on a fixed port (kept across restarts), output appended to a log.

    ``die_with_parent``: the service shuts itself down once this process is gone, even when
    it was killed without a chance to stop it (``--parent-pid``)."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        die_with_parent: bool = False,
    ) -> None:
        self.port = free_port()
        self.args = [*args, "--parent-pid", str(os.getpid())] if die_with_parent else args
        self.log_path = log_path
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 300) -> ServiceProcess:
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

    def metric(self, series: str) -> float | None:
        """The current value of one series on /metrics, e.g.
        ``'sweetspot_admitted_requests{kind="score"}'``; None when it is not exported."""
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == series:
                return float(value)
        return None

    def wait_admitted(self, kind: str, *, count: int = 1, timeout: float = 30) -> None:
        """Wait until exactly ``count`` ``kind`` requests ("score" or "update") are in
        flight, as the admission gauge on /metrics reports it."""
        series = f'sweetspot_admitted_requests{{kind="{kind}"}}'
        wait_until(
            lambda: self.metric(series) == count,
            f"{count} {kind} request(s) admitted",
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
