"""Typed dependencies and request-level helpers: routes receive shared state through these."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sweetspot_client.schema import UpdateRequest
from sweetspot_service.core.errors import (
    FeaturesMismatchError,
    LimitExceededError,
    RunAccessError,
)
from sweetspot_service.core.security import ALL_RUNS, GRANT, Grant
from sweetspot_service.runs import Run
from sweetspot_service.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_grant(request: Request) -> Grant:
    """The runs the request's key covers (every run without keys, or with an unbound key)."""
    grant: Grant = request.scope.get("state", {}).get(GRANT, ALL_RUNS)
    return grant


GrantDep = Annotated[Grant, Depends(get_grant)]


def require_run(grant: Grant, *names: str | None) -> None:
    """403 unless the key covers every named run; checked before the run is looked up, so a
    key learns nothing of runs outside its own (not even whether they exist)."""
    for name in names:
        if name is not None and not grant.covers(name):
            bound = ", ".join(grant.runs or ())
            raise RunAccessError(f"this API key may not use run {name!r}: it is bound to {bound}")


def admit_prompts(
    route: str, prompts: list[str], runtime: Runtime, *, truncate: bool = False
) -> list[str]:
    """Apply the configured limits (tighter than the schema's ceilings); count the batch.

    Over-long prompts are rejected, or cut to the limit when the request asks to ``truncate``.
    """
    settings = runtime.settings
    if len(prompts) > settings.max_prompts_per_request:
        raise LimitExceededError(
            f"{len(prompts)} prompts in one request; this service accepts at most "
            f"{settings.max_prompts_per_request}: split the batch"
        )
    limit = settings.max_prompt_chars
    for i, prompt in enumerate(prompts):
        if len(prompt) > limit and not truncate:
            raise LimitExceededError(
                f"prompts[{i}] has {len(prompt)} characters; this service accepts at most "
                f'{limit}: shorten it, or send "truncate": true to have it cut'
            )
    runtime.metrics.batch_prompts.labels(route).observe(len(prompts))
    return [p[:limit] for p in prompts] if truncate else prompts


def admit_features(run: Run, features: list[list[float]] | None, runtime: Runtime) -> None:
    """The request's ``features`` fit its run (the schema checked their shape and values):
    a text run takes none; a feature run takes one vector of its width per prompt, at most
    ``max_feature_values`` numbers in all."""
    width = run.feature_width
    if width is None:
        if features is not None:
            raise FeaturesMismatchError(
                f"run {run.name!r} is a text run: create it with feature_width to send "
                "features, or leave features out"
            )
        return
    if features is None:
        raise FeaturesMismatchError(
            f"run {run.name!r} was created with feature_width {width}: send features, one "
            f"vector of {width} numbers per prompt"
        )
    if (got := len(features[0])) != width:
        raise FeaturesMismatchError(
            f"run {run.name!r} was created with feature_width {width}; got vectors of width {got}"
        )
    values, bound = len(features) * width, runtime.settings.max_feature_values
    if values > bound:
        raise LimitExceededError(
            f"{len(features)} prompts × feature_width {width} = {values} numbers exceeds this "
            f"service's max_feature_values ({bound}): send fewer prompts per request"
        )


def admit_rewards(body: UpdateRequest, bound: int) -> None:
    """422 when one prompt's rewards in this update (repeats added up) exceed ``bound``."""
    per_prompt: dict[str, int] = {}
    for prompt, rewards in zip(body.prompts, body.rewards, strict=True):
        per_prompt[prompt] = per_prompt.get(prompt, 0) + len(rewards)
    worst = max(per_prompt, key=per_prompt.__getitem__)
    if per_prompt[worst] > bound:
        index = body.prompts.index(worst)
        raise LimitExceededError(
            f"prompts[{index}] has {per_prompt[worst]} rewards in this update (its repeats "
            f"added up), over this service's max_rewards_per_prompt ({bound}): report fewer "
            "answers per prompt, or raise --max-rewards-per-prompt"
        )
