"""/v1/score and /v1/select: read-only uses of the value model."""

from __future__ import annotations

import random

from fastapi import APIRouter

from sweetspot_client.schema import (
    PromptStatsPublic,
    ScoreRequest,
    ScoreResponse,
    SelectRequest,
    SelectResponse,
    StatsRequest,
    StatsResponse,
)
from sweetspot_client.selection import select as select_by_rule
from sweetspot_service.api.deps import (
    GrantDep,
    RuntimeDep,
    admit_features,
    admit_prompts,
    require_run,
)
from sweetspot_service.core.errors import COMMON_ERRORS, StoreDownError, error_responses
from sweetspot_service.runs import Run
from sweetspot_service.runtime import Runtime
from sweetspot_service.store import StoreUnavailableError, prompt_hash
from sweetspot_service.value_model import Scored

router = APIRouter(
    prefix="/v1",
    tags=["scoring"],
    responses={**COMMON_ERRORS, **error_responses(404)},
)


@router.post("/score")
async def score(body: ScoreRequest, runtime: RuntimeDep, grant: GrantDep) -> ScoreResponse:
    """Predicted success probability p̂ ∈ [0, 1] of each prompt under the run's current policy."""
    require_run(grant, body.run)
    run = await runtime.get_run(body.run)
    prompts = admit_prompts("/v1/score", body.prompts, runtime, truncate=body.truncate)
    admit_features(run, body.features, runtime)
    scored, version, target = await runtime.score(run, prompts, body.features, body.policy_version)
    scores, sds = _pick(scored, posterior=body.posterior)
    return ScoreResponse(
        scores=scores,
        uncertainty=sds,
        prior=[s.prior for s in scored],
        model_version=version,
        run=run.name,
        policy_version=body.policy_version,
        target_version=target,
    )


@router.post("/select")
async def select(body: SelectRequest, runtime: RuntimeDep, grant: GrantDep) -> SelectResponse:
    """The ``m`` candidates the rule keeps; ``nearest``: p̂ closest to ``tau``, best first."""
    require_run(grant, body.run)
    run = await runtime.get_run(body.run)
    prompts = admit_prompts("/v1/select", body.prompts, runtime, truncate=body.truncate)
    admit_features(run, body.features, runtime)
    scored, version, target = await runtime.score(run, prompts, body.features, body.policy_version)
    scores, sds = _pick(scored, posterior=body.posterior)
    indices = select_by_rule(
        scores,
        body.m if body.lease_s is None else len(scores),  # a lease needs the whole order
        body.tau,
        rule=body.rule,
        epsilon=body.epsilon,
        uncertainty=sds,
        group_size=body.group_size,
        rng=random.Random(body.seed),
    )
    leased = None
    if body.lease_s is not None:
        indices, leased = await _lease(runtime, run, prompts, indices, body.m, body.lease_s)
    return SelectResponse(
        indices=indices,
        scores=[scores[i] for i in indices],
        candidate_scores=scores,
        candidate_uncertainty=sds,
        model_version=version,
        run=run.name,
        policy_version=body.policy_version,
        target_version=target,
        leased=leased,
    )


async def _lease(
    runtime: Runtime, run: Run, prompts: list[str], order: list[int], m: int, ttl_s: float
) -> tuple[list[int], int]:
    """The first ``m`` of ``order`` not leased elsewhere, now leased to this request, topped
    up in order with leased ones when too few are free; and how many this request leased."""
    hashes = [prompt_hash(prompts[i]) for i in order]
    try:
        taken = await runtime.store.acquire_leases(run.ref, hashes, m, ttl_s)
    except StoreUnavailableError as exc:
        runtime.metrics.store_errors.labels("lease").inc()
        raise StoreDownError(f"leases unavailable, retry: {exc}") from exc
    chosen = set(taken)
    rest = [p for p in range(len(order)) if p not in chosen][: m - len(taken)]
    return [order[p] for p in taken + rest], len(taken)


def _pick(scored: list[Scored], *, posterior: bool) -> tuple[list[float], list[float]]:
    """(p̂, sd) per prompt: the posterior's, or the text-only prior's."""
    if posterior:
        return [s.p for s in scored], [_sd(s.sd) for s in scored]
    return [s.prior for s in scored], [_sd(s.prior_sd) for s in scored]


def _sd(value: float) -> float:
    return min(max(value, 0.0), 0.5)


@router.post("/stats")
async def stats(body: StatsRequest, runtime: RuntimeDep, grant: GrantDep) -> StatsResponse:
    """Observed reward statistics per prompt (count, mean, last version), from the store.
    A feature run's prior, posterior and uncertainty are null: they need the prompts'
    vectors, which ``/v1/score`` takes."""
    require_run(grant, body.run)
    run = await runtime.get_run(body.run)
    admit_prompts("/v1/stats", body.prompts, runtime)
    try:
        found = await runtime.store.prompt_stats(run.ref, [prompt_hash(p) for p in body.prompts])
    except StoreUnavailableError as exc:
        runtime.metrics.store_errors.labels("stats").inc()
        raise StoreDownError(f"statistics unavailable, retry: {exc}") from exc
    scored: list[Scored | None] = [None] * len(found)
    if run.feature_width is None:
        scored = list((await runtime.score(run, list(body.prompts)))[0])
    return StatsResponse(
        stats=[
            PromptStatsPublic(
                count=s.count if s else 0,
                mean_reward=s.mean if s else None,
                last_version=s.last_seq if s else None,
                prior=v.prior if v else None,
                posterior=v.p if v else None,
                uncertainty=_sd(v.sd) if v else None,
            )
            for s, v in zip(found, scored, strict=True)
        ],
        run=run.name,
    )
