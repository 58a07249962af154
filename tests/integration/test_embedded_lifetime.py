"""An embedded service outlives no trainer: killed outright (SIGKILL, as the OOM killer does),
the trainer cannot stop its service, so the service watches for its parent and shuts down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from sweetspot_service.launcher import wait_until

PARENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sweetspot_service.launcher import ServiceProcess

    args = ["--backbone", "minilm"]
    service = ServiceProcess(args, Path(sys.argv[1]), die_with_parent=True).start()
    print(service.process.pid, service.url, flush=True)
    time.sleep(600)
    """
)


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_the_service_shuts_down_when_its_parent_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(log)], stdout=subprocess.PIPE, text=True
    )
    pid = None
    try:
        assert parent.stdout is not None
        pid_text, url = parent.stdout.readline().split()  # once the service is ready
        pid = int(pid_text)
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        parent.kill()
        parent.wait()
        wait_until(lambda: not running(pid), "the orphaned service to exit", timeout=60)
        assert "parent process" in log.read_text() and "is gone: shutting down" in log.read_text()
    finally:
        parent.kill()
        parent.wait()
        if pid is not None and running(pid):  # the test failed: leave no service behind
            os.kill(pid, signal.SIGKILL)
