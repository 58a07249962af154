"""The wire schema rejects bad requests with a message that says what to fix."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from sweetspot_client import schema
from sweetspot_client.schema import (
    MAX_FEATURE_WIDTH,
    MAX_PROMPT_CHARS,
    RunCreate,
    RunInfo,
    ScoreRequest,
    ScoreResponse,
    SelectRequest,
    SelectResponse,
    UpdateRequest,
    UpdateResponse,
)
from sweetspot_service.core.config import Settings
from sweetspot_service.main import create_app
from sweetspot_service.testing import wait_until
from sweetspot_service.update_log import encode_update

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


LAX: list[tuple[str, dict[str, Any], tuple[str | int, ...]]] = [
    # (route, body, location of the one error): coercions a lax schema would accept
    ("/v1/update", {"prompts": ["a"], "rewards": [[True]]}, ("rewards", 0, 0)),
    ("/v1/update", {"prompts": ["a"], "rewards": [[0.5, "0.5"]]}, ("rewards", 0, 1)),
    ("/v1/update", {"prompts": ["a"], "rewards": [[1]], "steps": "3"}, ("steps",)),
    ("/v1/update", {"prompts": ["a"], "rewards": [[1]], "steps": True}, ("steps",)),
    ("/v1/select", {"prompts": ["a", "b"], "m": True}, ("m",)),
    ("/v1/select", {"prompts": ["a", "b"], "m": "1"}, ("m",)),
    ("/v1/select", {"prompts": ["a", "b"], "m": 1.0}, ("m",)),
    ("/v1/select", {"prompts": ["a", "b"], "m": 1, "tau": "0.5"}, ("tau",)),
    ("/v1/select", {"prompts": ["a", "b"], "m": 1, "seed": "7"}, ("seed",)),
    ("/v1/select", {"prompts": ["a", "b"], "m": 1, "epsilon": "0.1"}, ("epsilon",)),
    ("/v1/score", {"prompts": ["a"], "truncate": "true"}, ("truncate",)),
    ("/v1/score", {"prompts": ["a"], "truncate": 1}, ("truncate",)),
]


@pytest.fixture(scope="module")
def app_client(tiny_llama: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(backbone=str(tiny_llama)))) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, "ready", timeout=60)
        yield client


@pytest.mark.parametrize(("route", "body", "loc"), LAX, ids=[str(b) for _, b, _ in LAX])
def test_lax_coercions_are_rejected_by_the_app(
    app_client: TestClient, route: str, body: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    response = app_client.post(route, json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert tuple(error["loc"]) == ("body", *loc), error


def test_integer_rewards_are_accepted_by_the_app(app_client: TestClient) -> None:
    update = {"prompts": ["int a", "int b"], "rewards": [[1, 0], [0]], "steps": 1}
    assert app_client.post("/v1/update", json=update).status_code == 200
    select = {"prompts": ["a", "b"], "m": 1, "tau": 1, "epsilon": 0.2, "seed": 3}
    assert app_client.post("/v1/select", json=select).status_code == 200


def test_an_integer_reward_keeps_its_idempotency_digest() -> None:
    """A retry across the upgrade must hash as before: 1 is re-encoded as 1.0, not 1."""
    request = UpdateRequest.model_validate_json('{"prompts": ["a"], "rewards": [[1, 0, 0.5]]}')
    body = encode_update(list(request.prompts), [list(r) for r in request.rewards], 1)
    assert body == '{"prompts":["a"],"rewards":[[1.0,0.0,0.5]],"steps":1}'
    as_floats = UpdateRequest(prompts=["a"], rewards=[[1.0, 0.0, 0.5]])
    assert body == encode_update(list(as_floats.prompts), [list(r) for r in as_floats.rewards], 1)


def test_python_callers_may_pass_tuples_and_numpy_floats() -> None:
    np = pytest.importorskip("numpy")
    request = UpdateRequest(prompts=("a",), rewards=[(np.float64(0.25), np.float32(1.0))])  # type: ignore[arg-type]
    assert request.rewards == [[0.25, 1.0]]


# Feature runs: ``features`` (one vector per prompt) and ``RunCreate.feature_width``.
VECTORS = [[0.5, -1.0, 2.0], [0.0, 1, 3.25]]


@pytest.mark.parametrize(("model", "valid"), REQUESTS, ids=REQUEST_IDS)
def test_features_one_vector_per_prompt_are_accepted(
    model: type[BaseModel], valid: dict[str, Any]
) -> None:
    request = model.model_validate({**valid, "features": VECTORS})
    assert request.features == [[0.5, -1.0, 2.0], [0.0, 1.0, 3.25]]  # type: ignore[attr-defined]
    assert model.model_validate(valid).features is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("model", "valid"), REQUESTS, ids=REQUEST_IDS)
@pytest.mark.parametrize(
    ("features", "said"),
    [
        ("[[1, 2, 3]]", "features has 1 vectors but prompts has 2 entries"),
        ("[[1, 2, 3], [1, 2]]", "features[1] has 2 numbers but features[0] has 3"),
        ("[[1, NaN], [1, 2]]", "finite number"),
        ("[[1, 2], [-Infinity, 2]]", "finite number"),
        ('[[1, 2], [1, "2"]]', "valid number"),
        ("[[1, 2], [1, true]]", "valid number"),
        ("[[], []]", "at least 1 item"),
        ("[1, 2]", "valid array"),
    ],
)
def test_bad_features_say_what_to_fix(
    model: type[BaseModel], valid: dict[str, Any], features: str, said: str
) -> None:
    body = json.dumps(valid)[:-1] + f', "features": {features}}}'
    with pytest.raises(ValidationError, match=re.escape(said)):
        model.model_validate_json(body)


def test_a_vector_wider_than_the_ceiling_is_rejected() -> None:
    ScoreRequest(prompts=["a"], features=[[0.0] * MAX_FEATURE_WIDTH])
    with pytest.raises(ValidationError) as info:
        ScoreRequest(prompts=["a"], features=[[0.0] * (MAX_FEATURE_WIDTH + 1)])
    assert info.value.errors()[0]["loc"] == ("features", 0)


def test_prompts_times_width_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "MAX_FEATURE_VALUES_PER_REQUEST", 6)
    UpdateRequest(prompts=["a", "b"], rewards=[[1.0], [0.0]], features=VECTORS)
    with pytest.raises(ValidationError, match="3 vectors × 3 numbers = 9 exceeds 6 values"):
        ScoreRequest(prompts=["a", "b", "c"], features=[*VECTORS, [1.0, 2.0, 3.0]])


@pytest.mark.parametrize("width", [0, MAX_FEATURE_WIDTH + 1, -3, "8", True, 8.0])
def test_a_feature_width_out_of_range_or_not_an_integer_is_rejected(width: object) -> None:
    with pytest.raises(ValidationError) as info:
        RunCreate.model_validate_json(json.dumps({"name": "x", "feature_width": width}))
    assert info.value.errors()[0]["loc"] == ("feature_width",)


def test_a_feature_width_is_optional_and_shown_by_run_info() -> None:
    assert RunCreate.model_validate({"name": "x"}).feature_width is None
    assert RunCreate.model_validate({"name": "x", "feature_width": 1}).feature_width == 1
    info = {"name": "x", "model_version": 0, "checkpointed_version": 0, "pending_updates": 0}
    assert RunInfo.model_validate(info).feature_width is None  # an older service: a text run
    assert RunInfo.model_validate({**info, "feature_width": 576}).feature_width == 576


def test_the_update_log_body_carries_features_and_a_text_body_is_unchanged() -> None:
    text = encode_update(["a"], [[1.0]], 1)
    assert text == '{"prompts":["a"],"rewards":[[1.0]],"steps":1}'  # as before feature runs
    request = UpdateRequest.model_validate_json(
        '{"prompts": ["a"], "rewards": [[1]], "features": [[1, -0.5]]}'
    )
    body = encode_update(["a"], [[1.0]], 1, request.features)
    assert body == '{"prompts":["a"],"rewards":[[1.0]],"steps":1,"features":[[1.0,-0.5]]}'
    assert UpdateRequest.model_validate_json(body).features == [[1.0, -0.5]]  # replayed alike
    assert body != encode_update(["a"], [[1.0]], 1, [[1.0, -0.25]])  # the digest covers them
