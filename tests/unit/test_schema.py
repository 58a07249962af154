"""The wire schema rejects bad requests with a message that says what to fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from sweetspot_client.schema import (
    MAX_PROMPT_CHARS,
    ScoreRequest,
    ScoreResponse,
    SelectRequest,
    SelectResponse,
    UpdateRequest,
    UpdateResponse,
)

REQUESTS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (ScoreRequest, {"prompts": ["a", "b"]}),
    (SelectRequest, {"prompts": ["a", "b"], "m": 1}),
    (UpdateRequest, {"prompts": ["a", "b"], "rewards": [[1.0], [0.0]]}),
]
REQUEST_IDS = [model.__name__ for model, _ in REQUESTS]


@pytest.mark.parametrize(("model", "valid"), REQUESTS, ids=REQUEST_IDS)
def test_valid_request_is_accepted(model: type[BaseModel], valid: dict[str, Any]) -> None:
    assert model.model_validate(valid).model_dump(exclude_defaults=True) == valid


@pytest.mark.parametrize(("model", "valid"), REQUESTS, ids=REQUEST_IDS)
def test_empty_prompts_list_is_rejected(model: type[BaseModel], valid: dict[str, Any]) -> None:
    body = {**valid, "prompts": []}
    if "rewards" in body:
        body["rewards"] = []
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    assert {err["loc"][0] for err in info.value.errors()} >= {"prompts"}


@pytest.mark.parametrize(("model", "valid"), REQUESTS, ids=REQUEST_IDS)
def test_empty_prompt_string_is_rejected(model: type[BaseModel], valid: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate({**valid, "prompts": ["a", ""]})
    assert info.value.errors()[0]["loc"] == ("prompts", 1)


@pytest.mark.parametrize(("model", "valid"), REQUESTS, ids=REQUEST_IDS)
def test_oversize_prompt_is_rejected(model: type[BaseModel], valid: dict[str, Any]) -> None:
    model.model_validate({**valid, "prompts": ["a", "x" * MAX_PROMPT_CHARS]})
    with pytest.raises(ValidationError) as info:
        model.model_validate({**valid, "prompts": ["a", "x" * (MAX_PROMPT_CHARS + 1)]})
    assert info.value.errors()[0]["loc"] == ("prompts", 1)


@pytest.mark.parametrize(("model", "valid"), REQUESTS, ids=REQUEST_IDS)
def test_unknown_field_is_rejected(model: type[BaseModel], valid: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate({**valid, "promts": ["typo"]})
    [error] = info.value.errors()
    assert error["type"] == "extra_forbidden"
    assert error["loc"] == ("promts",)


@pytest.mark.parametrize("reward", [float("nan"), float("inf"), float("-inf"), -0.01, 1.01])
def test_out_of_range_reward_is_rejected(reward: float) -> None:
    with pytest.raises(ValidationError) as info:
        UpdateRequest.model_validate({"prompts": ["a"], "rewards": [[0.5, reward]]})
    assert info.value.errors()[0]["loc"] == ("rewards", 0, 1)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "-1", "2"])
def test_out_of_range_reward_in_raw_json_is_rejected(literal: str) -> None:
    raw = f'{{"prompts": ["a"], "rewards": [[0.5, {literal}]]}}'
    with pytest.raises(ValidationError):
        UpdateRequest.model_validate_json(raw)


def test_boundary_rewards_are_accepted() -> None:
    request = UpdateRequest.model_validate_json('{"prompts": ["a"], "rewards": [[0, 1, 0.0, 1.0]]}')
    assert request.rewards == [[0.0, 1.0, 0.0, 1.0]]


@pytest.mark.parametrize("tau", [float("nan"), float("inf"), -0.1, 1.1])
def test_select_tau_outside_unit_interval_is_rejected(tau: float) -> None:
    with pytest.raises(ValidationError) as info:
        SelectRequest(prompts=["a"], m=1, tau=tau)
    assert info.value.errors()[0]["loc"] == ("tau",)


def test_mismatched_prompts_and_rewards_say_what_to_fix() -> None:
    with pytest.raises(ValidationError) as info:
        UpdateRequest(prompts=["a", "b", "c"], rewards=[[1.0], [0.0]])
    message = str(info.value)
    assert "rewards has 2 lists but prompts has 3 entries" in message
    assert "send one list of rewards per prompt" in message


def test_empty_inner_rewards_list_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        UpdateRequest(prompts=["a", "b"], rewards=[[1.0], []])
    assert info.value.errors()[0]["loc"] == ("rewards", 1)


@pytest.mark.parametrize("steps", [0, 65])
def test_update_steps_out_of_range_is_rejected(steps: int) -> None:
    with pytest.raises(ValidationError):
        UpdateRequest(prompts=["a"], rewards=[[1.0]], steps=steps)


def test_select_m_larger_than_prompts_is_rejected() -> None:
    SelectRequest(prompts=["a", "b"], m=2)
    with pytest.raises(ValidationError) as info:
        SelectRequest(prompts=["a", "b"], m=3)
    message = str(info.value)
    assert "m=3 exceeds the 2 candidate prompts" in message
    assert "lower m" in message


def test_select_m_below_one_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        SelectRequest(prompts=["a"], m=0)
    assert info.value.errors()[0]["loc"] == ("m",)


def test_update_targets_are_mean_rewards() -> None:
    request = UpdateRequest(
        prompts=["a", "b", "c", "d"],
        rewards=[[1.0, 0.0], [1.0, 1.0, 1.0, 0.0], [0.0], [0.25, 0.75, 0.5]],
    )
    assert request.targets() == [0.5, 0.75, 0.0, 0.5]


def test_update_targets_sum_without_drift() -> None:
    """Ten 0.1s average to exactly 0.1, which a naive left-to-right sum would miss."""
    request = UpdateRequest(prompts=["a"], rewards=[[0.1] * 10])
    assert request.targets() == [0.1]


def test_responses_ignore_unknown_fields() -> None:
    score = ScoreResponse.model_validate_json(
        '{"scores": [0.5], "model_version": 3, "added_in_v2": {"x": 1}}'
    )
    assert score == ScoreResponse(scores=[0.5], model_version=3)
    select = SelectResponse.model_validate(
        {
            "indices": [1],
            "scores": [0.4],
            "candidate_scores": [0.9, 0.4],
            "model_version": 0,
            "latency_seconds": 0.01,
        }
    )
    assert select.indices == [1]
    update = UpdateResponse.model_validate(
        {
            "model_version": 1,
            "loss": 0.1,
            "mse_before": 0.2,
            "mae_before": 0.3,
            "num_prompts": 2,
            "extra": True,
        }
    )
    assert update.num_prompts == 2


def test_response_scores_outside_unit_interval_are_rejected() -> None:
    with pytest.raises(ValidationError):
        ScoreResponse.model_validate_json('{"scores": [NaN], "model_version": 0}')
    with pytest.raises(ValidationError):
        ScoreResponse(scores=[1.5], model_version=0)
