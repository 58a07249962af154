"""Typed dependencies: routes receive shared state through these, never globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sweetspot_service.core.config import Settings
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


def check_prompt_limits(prompts: list[str], settings: Settings) -> None:
    """The service's configured limits, tighter than the wire schema's hard ceilings."""
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
