"""``sweetspot-serve``: run the service with uvicorn. Flags mirror ``SWEETSPOT_*`` settings."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

import uvicorn
from pydantic_settings import CliApp, SettingsConfigDict

from sweetspot_service.allocator import keep_freed_memory
from sweetspot_service.core.config import Settings
from sweetspot_service.http_limits import http_protocol
from sweetspot_service.main import create_app
from sweetspot_service.runtime import Runtime


class CliSettings(Settings):
    model_config = SettingsConfigDict(
        env_prefix="SWEETSPOT_",
        extra="forbid",
        cli_prog_name="sweetspot-serve",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )


def main(argv: list[str] | None = None) -> None:
    settings = CliApp.run(CliSettings, cli_args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.keep_freed_memory:
        keep_freed_memory()
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=http_protocol(),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # Above the drain's request budget: routes answer (503, retry) before uvicorn
        # cancels them, which would answer a bare 500.
        timeout_graceful_shutdown=runtime.drain.server_grace_s,
    )
    if settings.parent_pid is not None:
        watch_parent(settings.parent_pid)
    DrainingServer(config, runtime=runtime).run()


def watch_parent(pid: int, *, interval_s: float = 1.0) -> threading.Thread:
    """SIGTERM this process once ``pid`` is no longer its parent (the parent died and the
    child was re-parented), so the usual drain and shutdown run. A thread that polls
    ``os.getppid()``: portable across POSIX systems, and unlike Linux's ``PR_SET_PDEATHSIG``
    it does not fire when merely the thread that started the child ends."""

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(interval_s)
        logging.getLogger("sweetspot_service").warning(
            "parent process %d is gone: shutting down", pid
        )
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="sweetspot-parent-watch", daemon=True)
    thread.start()
    return thread


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM/SIGINT first turn readiness to 503 (``Runtime.begin_drain``).

    uvicorn then stops accepting, lets in-flight requests finish (they answer within the
    drain's request budget, below ``timeout_graceful_shutdown``; see ``drain.py``), and runs
    the app's shutdown: apply what was accepted, checkpoint, close the store (within the
    other half of ``shutdown_timeout_s``).
    """

    def __init__(self, config: uvicorn.Config, *, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.runtime.begin_drain()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    main()
