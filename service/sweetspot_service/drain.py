"""The shutdown budget: what SIGTERM leaves to requests in flight, and to the final apply.

``shutdown_timeout_s`` is split in two halves. For the first, requests admitted before the
signal may still wait (for a body to arrive, for an update to be applied); when it runs out
they are answered (503, "retry with the same key") rather than left to uvicorn, whose
graceful-shutdown timeout (``server_grace_s``) is set above it: uvicorn cancels what is
still running then, and a cancelled request gets a bare 500. The second half is for
``Runtime.close``: apply what was accepted, checkpoint, close the store.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Drain:
    def __init__(self, *, shutdown_timeout_s: float, store_timeout_s: float) -> None:
        self.requests_s = shutdown_timeout_s / 2
        """How long requests in flight may still wait once the drain has begun."""
        self.close_s = shutdown_timeout_s / 2
        """How long ``Runtime.close`` has to apply, checkpoint and close."""
        # A route past the request budget may still be inside one store call.
        self.server_grace_s = math.ceil(self.requests_s + store_timeout_s) + 1
        """uvicorn's ``timeout_graceful_shutdown``: above everything a route may still wait."""
        self.deadline: float | None = None
        """``time.monotonic()`` at which requests in flight stop waiting; None until SIGTERM."""
        self._begun = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def begun(self) -> bool:
        return self.deadline is not None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that serves requests (``begin`` may be called from a signal handler)."""
        self._loop = loop

    def begin(self) -> None:
        """Start the request budget; safe from a signal handler or another thread."""
        if self.deadline is not None:
            return
        self.deadline = time.monotonic() + self.requests_s
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._announce)

    def _announce(self) -> None:
        self._begun.set()
        logger.info(
            "draining: requests in flight get up to %.1f s, then accepted updates are "
            "applied and checkpointed within %.1f s",
            self.requests_s,
            self.close_s,
        )

    async def wait_for(self, future: asyncio.Future[T], timeout: float) -> T:
        """``future``'s result within ``timeout`` s, and never past the drain's deadline;
        ``TimeoutError`` otherwise (``future`` is then cancelled)."""
        end = time.monotonic() + timeout
        begun = asyncio.ensure_future(self._begun.wait())
        either: list[asyncio.Future[Any]] = [future, begun]
        try:
            await asyncio.wait(either, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            begun.cancel()
        if not future.done() and self.deadline is not None:
            end = min(end, self.deadline)
        return await asyncio.wait_for(future, max(0.0, end - time.monotonic()))
