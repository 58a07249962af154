"""Start an embedded Sweetspot service as a real child process, for runs without one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sweetspot_client import APIConnectionError, SweetspotClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def embedded_service(
    *,
    backbone: str,
    log_path: Path,
    seed: int = 0,
    extra_args: list[str] | None = None,
    ready_timeout: float = 300.0,
) -> Iterator[str]:
    """Run ``sweetspot-serve`` on a free loopback port; yield its URL once ready.

    ``extra_args`` are further ``sweetspot-serve`` flags. The child's output goes to
    ``log_path``; it is terminated (then killed) on exit.
    """
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sweetspot_service.cli", "--backbone", backbone]
    command += ["--port", str(port), "--seed", str(seed), "--log-level", "warning"]
    command += extra_args or []
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log_path, ready_timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with SweetspotClient(base_url=url, timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"embedded sweetspot-serve exited with {process.returncode}; see {log_path}"
                )
            try:
                health = client.health()
                if health.ready:
                    return
                if health.status == "failed":
                    raise RuntimeError(f"embedded service failed to load: {health.detail}")
            except APIConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"embedded service not ready after {timeout:.0f}s; see {log_path}"
                )
            time.sleep(0.25)
