"""/v1/runs: create, list, inspect and delete training runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from sweetspot_client.schema import (
    RUN_PATTERN,
    CalibrationBin,
    CalibrationResponse,
    CohortError,
    RunCreate,
    RunInfo,
    RunList,
)
from sweetspot_service.api.deps import GrantDep, RuntimeDep, require_run
from sweetspot_service.core.errors import COMMON_ERRORS, error_responses
from sweetspot_service.runs import Run

router = APIRouter(
    prefix="/v1/runs",
    tags=["runs"],
    responses={**COMMON_ERRORS, **error_responses(404, 409)},
)


def _info(run: Run) -> RunInfo:
    return RunInfo(
        name=run.name,
        model_version=run.version,
        checkpointed_version=run.checkpointed_version,
        pending_updates=run.pending,
        error=run.error,
        feature_width=run.feature_width,
    )


@router.get("")
async def list_runs(runtime: RuntimeDep, grant: GrantDep) -> RunList:
    """The runs this service serves (a key bound to runs sees only those)."""
    runtime.require_ready()
    runs = sorted((r for r in runtime.runs.values() if grant.covers(r.name)), key=lambda r: r.name)
    return RunList(runs=[_info(r) for r in runs])


@router.post("", status_code=201)
async def create_run(body: RunCreate, runtime: RuntimeDep, grant: GrantDep) -> RunInfo:
    """A new run with a fresh value model (p̂ = 0.5 everywhere until it learns), or with
    ``"from": "<run>"`` a warm start from that run's current value model. With
    ``"feature_width": W`` a feature run: its requests carry one vector of W numbers per
    prompt (``features``), which its value model reads instead of the text. A key bound to
    runs creates only its own, and forks only from its own."""
    require_run(grant, body.name, body.from_)
    return _info(await runtime.create_run(body.name, body.from_, body.feature_width))


RunPath = Annotated[str, Path(pattern=RUN_PATTERN, max_length=64)]


@router.get("/{name}")
async def get_run(name: RunPath, runtime: RuntimeDep, grant: GrantDep) -> RunInfo:
    require_run(grant, name)
    return _info(await runtime.get_run(name))


@router.get("/{name}/calibration")
async def get_calibration(
    name: RunPath, runtime: RuntimeDep, grant: GrantDep
) -> CalibrationResponse:
    """Progressive-validation error and calibration over the run's last reported prompts."""
    require_run(grant, name)
    run = await runtime.get_run(name)
    summary = run.calibration.summary()
    cohorts = {
        cohort: CohortError(
            prompts=summary.counts[cohort],
            mae=summary.mae[cohort],
            mean_uncertainty=summary.uncertainty[cohort],
        )
        for cohort in ("all", "first_seen", "revisited")
    }
    return CalibrationResponse(
        run=run.name,
        model_version=run.calibration.version,  # of the data read, not the model's counter
        window=summary.size,
        **cohorts,
        brier=summary.brier,
        spearman=summary.spearman,
        bins=[
            CalibrationBin(
                lower=b.lower,
                upper=b.upper,
                prompts=b.count,
                mean_predicted=b.mean_predicted,
                mean_observed=b.mean_observed,
            )
            for b in summary.bins
        ],
    )


@router.get("/{name}/export", response_class=Response)
async def export_run(name: RunPath, runtime: RuntimeDep, grant: GrantDep) -> Response:
    """The run's value model as one portable file (safetensors, with JSON metadata: the
    backbone, modes and the version it was exported at; it imports at version 0)."""
    require_run(grant, name)
    data = await runtime.export_run(name)
    disposition = f'attachment; filename="{name}.sweetspot.safetensors"'
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": disposition},
    )


@router.put("/{name}/import", status_code=201)
async def import_run(
    name: RunPath, request: Request, runtime: RuntimeDep, grant: GrantDep
) -> RunInfo:
    """A new run ``name`` whose value model is the file in the body (from ``/export``, on a
    service with the same backbone and modes: 422 names what differs; 409 if it exists)."""
    require_run(grant, name)
    return _info(await runtime.import_run(name, await request.body()))


@router.delete("/{name}", status_code=204)
async def delete_run(name: RunPath, runtime: RuntimeDep, grant: GrantDep) -> Response:
    """Forget the run: its value model, update log, statistics, cache and checkpoint."""
    require_run(grant, name)
    await runtime.delete_run(name)
    return Response(status_code=204)
