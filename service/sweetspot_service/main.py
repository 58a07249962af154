"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sweetspot_service.api.middleware import (
    AdmissionMiddleware,
    AuthMiddleware,
    BodyMiddleware,
    MetricsMiddleware,
)
from sweetspot_service.api.routes import health, runs, scoring, update
from sweetspot_service.core.config import Settings
from sweetspot_service.core.errors import install_error_handlers
from sweetspot_service.core.security import KeyRing
from sweetspot_service.runtime import Runtime


def create_app(settings: Settings | None = None) -> FastAPI:
    """A Sweetspot app; the value model starts loading when the app starts."""
    settings = settings or Settings()
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        yield
        await runtime.close()

    app = FastAPI(
        title="Sweetspot",
        version="0.1.0",
        summary="Which prompts will your policy solve about half the time?",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(health.router)
    app.include_router(scoring.router)
    app.include_router(update.router)
    app.include_router(runs.router)
    install_error_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, 422)

    # Added innermost first: metrics → auth → body → admission → routes.
    app.add_middleware(
        AdmissionMiddleware,
        limits={"score": settings.max_queued_scores, "update": settings.max_queued_updates},
        metrics=runtime.metrics,
        draining=lambda: runtime.status == "draining",
    )
    app.add_middleware(
        BodyMiddleware,
        max_bytes=settings.max_body_bytes,
        max_import_bytes=runtime.import_limit,
        max_concurrent_imports=settings.max_concurrent_imports,
        timeout_s=settings.body_read_timeout_s,
        metrics=runtime.metrics,
        drain=runtime.drain,
    )
    app.add_middleware(
        AuthMiddleware,
        keys=KeyRing(
            settings.api_keys,
            settings.read_api_keys,
            settings.metrics_api_keys,
            settings.run_keys,
        ),
        public_paths=settings.open_paths,
        metrics=runtime.metrics,
    )
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)
    if settings.api_keys or settings.read_api_keys or settings.run_keys:
        _document_bearer_auth(app, frozenset(settings.open_paths))
    return app


def _document_bearer_auth(app: FastAPI, public: frozenset[str]) -> None:
    """Declare the bearer scheme in OpenAPI on every operation that needs a key."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = {"type": "http", "scheme": "bearer"}
            for path, operations in schema["paths"].items():
                if path not in public:
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
                        operation["responses"].setdefault(
                            "401", {"description": "Missing or unknown API key."}
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
