"""Liveness, readiness and Prometheus metrics (public: no API key needed)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sweetspot_client.schema import DEFAULT_RUN, HealthResponse
from sweetspot_service.api.deps import RuntimeDep
from sweetspot_service.store import StoreUnavailableError

router = APIRouter(tags=["health"])
_PING_TIMEOUT_S = 0.25  # readiness stays fast even when Redis hangs


@router.head("/healthz", include_in_schema=False)  # load balancers probe with HEAD
@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (answers even while the model loads or drains)."""
    return {"status": "alive"}


@router.head("/readyz", include_in_schema=False)
@router.get("/readyz", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def readyz(runtime: RuntimeDep, response: Response) -> HealthResponse:
    """200 once every run is loaded and replayed; 503 while loading, draining or failed.

    A store outage does not make the service unready: scoring still works without it.
    """
    ready = runtime.status == "ok"
    if not ready:
        response.status_code = 503
    store = runtime.store.kind
    if store != "memory":
        try:
            await asyncio.wait_for(runtime.store.ping(), _PING_TIMEOUT_S)
        except (StoreUnavailableError, TimeoutError):
            store = f"{store}-unavailable"
    default = runtime.runs.get(DEFAULT_RUN)
    return HealthResponse(
        status=runtime.status,
        ready=ready,
        model_version=default.version if default else None,
        backbone=runtime.settings.backbone,
        train_mode=runtime.settings.train_mode,
        store=store,
        detail=runtime.error,
    )


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
