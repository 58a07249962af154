"""/v1/update: the one route that changes the value model."""

from __future__ import annotations

from fastapi import APIRouter

from sweetspot_client.schema import UpdateRequest, UpdateResponse
from sweetspot_service.api.deps import ModelDep, RuntimeDep, admit_prompts

router = APIRouter(prefix="/v1", tags=["training"])


@router.post("/update")
async def update(body: UpdateRequest, model: ModelDep, runtime: RuntimeDep) -> UpdateResponse:
    """One or more optimiser steps on (V(x) − mean reward)² for the reported prompts.

    The response's ``mae_before``/``mse_before`` are measured before the step: the value
    model's honest online error on prompts it had not yet been told about.
    """
    admit_prompts("/v1/update", body.prompts, runtime)
    steps = body.steps or runtime.settings.update_steps
    stats = await runtime.run_model(model.update, body.prompts, body.targets(), steps)
    runtime.store.record_update(body.prompts, body.rewards, stats.version)
    m = runtime.metrics
    m.updates.inc()
    m.update_loss.set(stats.loss)
    m.model_version.set(stats.version)
    for error in stats.abs_errors_before:
        m.prediction_abs_error.observe(error)
    return UpdateResponse(
        model_version=stats.version,
        loss=stats.loss,
        mse_before=stats.mse_before,
        mae_before=stats.mae_before,
        num_prompts=len(body.prompts),
    )
