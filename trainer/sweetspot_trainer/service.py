"""Start an embedded Sweetspot service as a real child process, for runs without one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sweetspot_service.launcher import ServiceProcess, free_port

__all__ = ["embedded_service", "free_port"]


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
    ``log_path``; it is terminated (then killed) on exit, and stops by itself if this process
    dies without stopping it. Raises ``RuntimeError`` when the service exits or fails to
    load, ``TimeoutError`` when it is not ready in time.
    """
    args = ["--backbone", backbone, "--seed", str(seed), *(extra_args or [])]
    service = ServiceProcess(args, log_path, die_with_parent=True)  # outlives no trainer
    try:
        service.start(timeout=ready_timeout)
        yield service.url
    finally:
        service.stop()
