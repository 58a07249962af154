"""Real servers for tests and benchmarks: redis-server and sweetspot-serve processes that
can be killed and restarted (crash tests), each on a free loopback port, and
``installed_tool`` for the other real tools the tests run (Prometheus, HAProxy).

Both wait for readiness by polling with a deadline, never by a fixed sleep. Users can use
them too, to test their trainer against a real service. ``ServiceProcess``, ``free_port``
and ``wait_until`` live in ``sweetspot_service.launcher`` (product code: the trainer's
embedded service uses them) and are re-exported here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from sweetspot_service.launcher import ServiceProcess, free_port, wait_until

__all__ = ["RedisServer", "ServiceProcess", "free_port", "installed_tool", "wait_until"]


def installed_tool(binary: str, package: str) -> str:
    """The path of ``binary`` (also looked up in /usr/sbin, where Debian puts daemons such as
    haproxy); ``RuntimeError`` naming the Debian ``package`` when it is missing."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if path is None:
        raise RuntimeError(
            f"{binary} is not installed; `make test` installs it (apt-get install {package}), "
            "or install it yourself"
        )
    return path


class RedisServer:
    """``redis-server`` on a free loopback port, durable (AOF, fsync on every write)."""

    def __init__(self, directory: Path) -> None:
        self.binary = installed_tool("redis-server", "redis-server")
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
