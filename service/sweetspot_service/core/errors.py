"""Internal conditions and the one place that maps them to HTTP status codes."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sweetspot_client.schema import ErrorResponse

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


class UpdateOutcomeUnknownError(ServiceError):
    """The append reached the store but its answer did not come back: the update may be in
    the log. Only a retry with the same key can tell (it is never applied twice)."""

    status_code = 503
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "1"}


class IdempotencyConflictError(ServiceError):
    status_code = 409


class RunFailedError(ServiceError):
    status_code = 409


class RunAccessError(ServiceError):
    """The request's key is bound to other runs."""

    status_code = 403


class RunNotFoundError(ServiceError):
    status_code = 404


class RunConflictError(ServiceError):
    status_code = 409


class IncompatibleModelError(ServiceError):
    """A value-model file this service cannot take (another backbone, mode or format)."""

    status_code = 422


class FeaturesMismatchError(ServiceError):
    """A request's features do not fit its run: features sent to a text run, none sent to a
    feature run, or vectors of another width (also a fork into another width)."""

    status_code = 422


class RunUnavailableError(ServiceError):
    """The run's model cannot serve (checkpoint failed to load, or diverged); others can."""

    status_code = 503
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "30"}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error codes, all with the ``ErrorResponse`` body."""
    return {code: {"model": ErrorResponse, "description": _DESCRIPTIONS[code]} for code in codes}


_DESCRIPTIONS = {
    400: "The body could not be parsed (not UTF-8 JSON).",
    401: "No API key, or an unknown one (only when keys are configured).",
    403: "The API key may only read, or is bound to other runs.",
    404: "No such run.",
    409: "Conflict: Idempotency-Key reused with another body, run exists or failed.",
    413: "Request body too large.",
    422: "Invalid request: the detail says which field and how to fix it.",
    429: "Too many requests in flight: retry after Retry-After seconds.",
    503: "Not ready, draining, store down, or update not yet applied or of unknown "
    "outcome: retry (an update with the same Idempotency-Key).",
}
# Every /v1 route can answer these (auth, admission, body size, readiness).
COMMON_ERRORS = error_responses(400, 401, 403, 413, 422, 429, 503)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, 500)
