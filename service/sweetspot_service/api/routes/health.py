"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sweetspot_client.schema import HealthResponse
from sweetspot_service.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (answers even while the model loads)."""
    return {"status": "alive"}


@router.get("/readyz", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def readyz(runtime: RuntimeDep, response: Response) -> HealthResponse:
    """200 once the value model is loaded, 503 before (or if loading failed)."""
    model = runtime.model
    if model is None:
        response.status_code = 503
    return HealthResponse(
        status=runtime.status,
        ready=model is not None,
        model_version=model.version if model else None,
        backbone=runtime.settings.backbone,
        train_mode=runtime.settings.train_mode,
        detail=runtime.error,
    )


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
