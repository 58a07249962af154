"""Pure ASGI middleware (no per-request task overhead), outermost first:

metrics → auth (401/403) → body (413 too large, 408 too slow) → admission (429 when the
queue is full). Auth answers before the body is read; admission counts only requests whose
body has arrived, and answers before it is parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sweetspot_service.core.metrics import Metrics
from sweetspot_service.core.security import (
    GRANT,
    READ_ONLY_POSTS,
    KeyRing,
    allows,
    bearer_token,
    required_access,
)
from sweetspot_service.drain import Drain

# Read-only model routes share the "score" bound; the update route has its own.
_ADMISSION_CLASSES = {**dict.fromkeys(READ_ONLY_POSTS, "score"), "/v1/update": "update"}
_CLOSE = (b"connection", b"close")


def _admission_class(path: str) -> str | None:
    """Which bounded queue a request waits in: reads that compute (score, select, stats,
    a run's calibration) share one, updates have theirs; the rest is never queued."""
    if path.startswith("/v1/runs/") and path.endswith("/calibration"):
        return "score"
    return _ADMISSION_CLASSES.get(path)  # the rest of the body is never read: drop the connection


class AuthMiddleware:
    """When keys are configured, every non-public path needs a bearer key with enough access."""

    def __init__(
        self, app: ASGIApp, *, keys: KeyRing, public_paths: list[str], metrics: Metrics
    ) -> None:
        self.app = app
        self.keys = keys
        self.public = frozenset(public_paths)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled:
            await self.app(scope, receive, send)
            return
        need = required_access(scope["method"], scope["path"], self.public)
        if need == "public":
            await self.app(scope, receive, send)
            return
        token = bearer_token(dict(scope["headers"]).get(b"authorization"))
        grant = self.keys.grant_of(token) if token is not None else None
        have = grant.access if grant is not None else None
        if grant is None or have is None:
            self.metrics.rejected.labels("unauthorized").inc()
            detail = "missing or unknown API key: send 'Authorization: Bearer <key>'"
            await _send_json(send, 401, detail, [(b"www-authenticate", b"Bearer")])
            return
        if not allows(have, need):
            self.metrics.rejected.labels("forbidden").inc()
            detail = (
                "this API key may only read /metrics"
                if have == "metrics"
                else "this API key may only read (score, select, stats, GET)"
            )
            await _send_json(send, 403, detail)
            return
        if grant.runs is not None and need == "metrics":
            self.metrics.rejected.labels("forbidden").inc()
            detail = "a key bound to runs may not read /metrics: its series name every run"
            await _send_json(send, 403, detail)
            return
        scope.setdefault("state", {})[GRANT] = grant  # the routes check the run (api/deps)
        await self.app(scope, receive, send)


class AdmissionMiddleware:
    """A bounded admission queue per class: over the bound, 429 + Retry-After at once;
    while draining, 503 for anything new.

    Counting happens once the body has arrived (``BodyMiddleware``) and before it is parsed,
    so an overloaded service spends little on the requests it turns away, health checks
    never wait behind them, and a slow sender cannot hold a slot.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: dict[str, int],
        metrics: Metrics,
        draining: Callable[[], bool],
    ) -> None:
        self.app = app
        self.limits = limits
        self.metrics = metrics
        self.draining = draining
        self.admitted = dict.fromkeys(limits, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = _admission_class(scope["path"]) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        if self.draining():  # SIGTERM: what was admitted finishes, nothing new starts
            detail = "service is shutting down; retry against another replica"
            await _send_json(send, 503, detail, [(b"retry-after", b"1")])
            return
        if self.admitted[kind] >= self.limits[kind]:
            self.metrics.rejected.labels("overloaded").inc()
            detail = f"too many {kind} requests in flight ({self.limits[kind]}): retry shortly"
            await _send_json(send, 429, detail, [(b"retry-after", b"1")])
            return
        self.admitted[kind] += 1
        self.metrics.queued.labels(kind).set(self.admitted[kind])
        try:
            await self.app(scope, receive, send)
        finally:
            self.admitted[kind] -= 1
            self.metrics.queued.labels(kind).set(self.admitted[kind])


class BodyMiddleware:
    """Reads the whole body before admission and the routes see the request, bounded in
    size (413) and in time (408), then replays it.

    A request takes an admission slot only once its body is here: a client that sends its
    body slowly, or never, holds a connection for at most ``timeout_s``, never a slot that
    other clients' requests need. A body whose declared size is over the limit is refused
    before any of it is read. Once the service drains, a body still arriving gets 503 at
    the drain's request deadline.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout_s: float,
        metrics: Metrics,
        drain: Drain,
        max_import_bytes: Callable[[], int] | int | None = None,
        max_concurrent_imports: int = 2,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._import_limit = max_import_bytes or max_bytes
        """The bound for ``PUT /v1/runs/{name}/import`` (a whole value model), or a callable
        giving it (it depends on the backbone, known once loaded)."""
        self._imports = asyncio.Semaphore(max_concurrent_imports)
        self.max_concurrent_imports = max_concurrent_imports
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path = scope["path"]
        is_import = (  # only the method that takes a file gets the file's bound
            scope["method"] == "PUT"
            and path.startswith("/v1/runs/")
            and path.endswith("/import")
            and path.count("/") == 4
        )
        limit = self.import_limit() if is_import else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_json(send, 413, self._too_large(limit, is_import), [_CLOSE])
            return
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # HTTP/1.1: no body at all
            return
        if is_import and self._imports.locked():
            self.metrics.rejected.labels("imports").inc()
            detail = (
                f"{self.max_concurrent_imports} value-model files are being received "
                "(max_concurrent_imports); retry shortly"
            )
            await _send_json(send, 429, detail, [(b"retry-after", b"2"), _CLOSE])
            return
        self.metrics.reading_bodies.inc()
        try:
            async with self._imports if is_import else contextlib.nullcontext():
                body = await self._read(receive, send, limit, is_import)
        finally:
            self.metrics.reading_bodies.dec()
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def import_limit(self) -> int:
        limit = self._import_limit
        return limit() if callable(limit) else limit

    async def _read(
        self, receive: Receive, send: Send, limit: int, is_import: bool
    ) -> bytes | None:
        """The body, or None once answered (408, 413) or when the client went away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            try:
                message = await self.drain.wait_for(
                    asyncio.ensure_future(receive()), max(0.0, deadline - loop.time())
                )
            except TimeoutError:
                if self.drain.begun:
                    detail = "service is shutting down; retry against another replica"
                    await _send_json(send, 503, detail, [(b"retry-after", b"1"), _CLOSE])
                    return None
                self.metrics.rejected.labels("body_timeout").inc()
                detail = (
                    f"request body did not arrive within {self.timeout_s:g} s "
                    "(body_read_timeout_s): send the whole body at once"
                )
                await _send_json(send, 408, detail, [_CLOSE])
                return None
            if message["type"] != "http.request":
                return None  # disconnected: nobody to answer
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > limit:
                await _send_json(send, 413, self._too_large(limit, is_import), [_CLOSE])
                return None
        return b"".join(chunks)

    def _too_large(self, limit: int, is_import: bool) -> str:
        if is_import:
            return f"value-model file exceeds {limit} bytes (max_import_bytes)"
        return f"request body exceeds {limit} bytes: send fewer or shorter prompts"


class MetricsMiddleware:
    """Counts requests and times them by route template (unmatched paths share one label)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


async def _send_json(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
