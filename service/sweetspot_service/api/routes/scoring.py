"""/v1/score and /v1/select: read-only uses of the value model."""

from __future__ import annotations

import random

from fastapi import APIRouter

from sweetspot_client.schema import ScoreRequest, ScoreResponse, SelectRequest, SelectResponse
from sweetspot_client.selection import select as select_by_rule
from sweetspot_service.api.deps import ModelDep, RuntimeDep, admit_prompts

router = APIRouter(prefix="/v1", tags=["scoring"])


@router.post("/score")
async def score(body: ScoreRequest, model: ModelDep, runtime: RuntimeDep) -> ScoreResponse:
    """Predicted success probability p̂ ∈ [0, 1] of each prompt under the current policy."""
    admit_prompts("/v1/score", body.prompts, runtime)
    scores, version = await runtime.run_model(model.predict, body.prompts)
    runtime.metrics.prompts_scored.inc(len(scores))
    return ScoreResponse(scores=scores, model_version=version)


@router.post("/select")
async def select(body: SelectRequest, model: ModelDep, runtime: RuntimeDep) -> SelectResponse:
    """The ``m`` candidates the rule keeps; ``nearest``: p̂ closest to ``tau``, best first."""
    admit_prompts("/v1/select", body.prompts, runtime)
    scores, version = await runtime.run_model(model.predict, body.prompts)
    runtime.metrics.prompts_scored.inc(len(scores))
    indices = select_by_rule(
        scores,
        body.m,
        body.tau,
        rule=body.rule,
        epsilon=body.epsilon,
        rng=random.Random(body.seed),
    )
    return SelectResponse(
        indices=indices,
        scores=[scores[i] for i in indices],
        candidate_scores=scores,
        model_version=version,
    )
