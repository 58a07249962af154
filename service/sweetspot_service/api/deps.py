"""Typed dependencies: routes receive shared state through these, never globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sweetspot_service.core.errors import LimitExceededError
from sweetspot_service.runtime import Runtime
from sweetspot_service.value_model import ValueModel


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_model(runtime: RuntimeDep) -> ValueModel:
    return runtime.require_model()


ModelDep = Annotated[ValueModel, Depends(get_model)]


def admit_prompts(route: str, prompts: list[str], runtime: Runtime) -> None:
    """Apply the configured limits (tighter than the schema's ceilings); count the batch."""
    settings = runtime.settings
    if len(prompts) > settings.max_prompts_per_request:
        raise LimitExceededError(
            f"{len(prompts)} prompts in one request; this service accepts at most "
            f"{settings.max_prompts_per_request}: split the batch"
        )
    for i, prompt in enumerate(prompts):
        if len(prompt) > settings.max_prompt_chars:
            raise LimitExceededError(
                f"prompts[{i}] has {len(prompt)} characters; this service accepts at most "
                f"{settings.max_prompt_chars}: shorten it"
            )
    runtime.metrics.batch_prompts.labels(route).observe(len(prompts))
