"""Internal conditions and the one place that maps them to HTTP status codes."""

from __future__ import annotations

import logging
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of conditions a route may raise; ``status_code`` and message go to the client."""

    status_code = 500
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotReadyError(ServiceError):
    status_code = 503
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "1"}


class LimitExceededError(ServiceError):
    status_code = 422


class StoreDownError(ServiceError):
    """The store cannot take a write now; nothing was acknowledged, so a retry is safe."""

    status_code = 503
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "1"}


class UpdatePendingError(ServiceError):
    """Accepted and durable, but not applied within the wait: retry with the same key."""

    status_code = 503
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "1"}


class IdempotencyConflictError(ServiceError):
    status_code = 409


class RunFailedError(ServiceError):
    status_code = 409


class RunNotFoundError(ServiceError):
    status_code = 404


class RunConflictError(ServiceError):
    status_code = 409


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, 500)
