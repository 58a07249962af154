"""/v1/update: the one route that changes a value model (through the durable update log)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Header

from sweetspot_client.schema import UpdateRequest, UpdateResponse
from sweetspot_service.api.deps import (
    GrantDep,
    RuntimeDep,
    admit_features,
    admit_prompts,
    admit_rewards,
    require_run,
)
from sweetspot_service.core.errors import COMMON_ERRORS, LimitExceededError, error_responses
from sweetspot_service.store import StoreUnavailableError, prompt_hash

logger = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1",
    tags=["training"],
    responses={**COMMON_ERRORS, **error_responses(404, 409)},
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retries of one update carry the same key: it is applied once and "
        "answered identically; the same key with a different body is a 409.",
    ),
]


@router.post("/update")
async def update(
    body: UpdateRequest,
    runtime: RuntimeDep,
    grant: GrantDep,
    idempotency_key: IdempotencyKey = None,
) -> UpdateResponse:
    """One or more optimiser steps on (V(x) − mean reward)² for the reported prompts.

    The update is appended to the run's durable log before anything else happens, applied
    in log order, and answered once applied. ``mae_before``/``mse_before`` are measured
    before the step (the online error); prompts reported before may have been trained on,
    so ``GET /v1/runs/{name}/calibration`` reports first-seen and revisited prompts apart.
    """
    require_run(grant, body.run)
    run = await runtime.get_run(body.run)
    admit_prompts("/v1/update", list(body.prompts), runtime)
    admit_features(run, body.features, runtime)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise LimitExceededError("Idempotency-Key must be 1-200 characters")
    key = idempotency_key or f"anon-{uuid.uuid4()}"
    steps = body.steps or runtime.settings.update_steps
    work, bound = len(body.prompts) * steps, runtime.settings.max_update_prompt_steps
    if work > bound:
        raise LimitExceededError(
            f"{len(body.prompts)} prompts × {steps} steps = {work} exceeds this service's "
            f"max_update_prompt_steps ({bound}): send fewer prompts or steps per update"
        )
    admit_rewards(body, runtime.settings.max_rewards_per_prompt)
    answer = await runtime.log.submit(run, key, body, steps)
    try:  # reported prompts return to the pool; a lease not released here expires anyway
        await runtime.store.release_leases(run.ref, [prompt_hash(p) for p in body.prompts])
    except StoreUnavailableError as exc:
        runtime.metrics.store_errors.labels("lease").inc()
        logger.warning("leases of run %r not released (they expire): %s", run.name, exc)
    return answer
