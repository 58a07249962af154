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

    A store outage, a failed run or checkpoints that cannot be written do not make the
    service unready: scoring (and, but for the store, updating other runs) still works, and
    the same condition would pull every replica out of the load balancer. They set
    ``degraded`` and are listed in ``problems`` (and exported in /metrics) instead.
    """
    ready = runtime.status == "ok"
    if not ready:
        response.status_code = 503
    store = runtime.store.kind
    problems = runtime.problems()
    if store != "memory":
        try:
            await asyncio.wait_for(runtime.store.ping(), _PING_TIMEOUT_S)
        except (StoreUnavailableError, TimeoutError):
            store = f"{store}-unavailable"
            problems.append("the store is unavailable: updates answer 503 until it is back")
    default = runtime.runs.get(DEFAULT_RUN)
    return HealthResponse(
        status=runtime.status,
        ready=ready,
        model_version=default.version if default else None,
        backbone=runtime.settings.backbone,
        train_mode=runtime.settings.train_mode,
        store=store,
        detail=runtime.error,
        degraded=bool(problems),
        problems=problems,
    )


@router.head("/metrics", include_in_schema=False)  # probes and uptime checks (issue 19.13)
@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    runtime.export_calibration()
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
