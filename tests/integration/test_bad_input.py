"""Bad input gets a 4xx that says what to fix, and changes nothing in the model."""

from __future__ import annotations

import httpx
import pytest

from sweetspot_client import SweetspotClient
from sweetspot_service.testing import wait_until

OK_PROMPTS = ["What is 1 + 1?", "What is 2 + 2?"]

BAD: list[tuple[str, str, int, str]] = [
    # (route, raw JSON body, expected status, text the message must contain)
    ("/v1/score", '{"prompts": []}', 422, "at least 1 item"),
    ("/v1/score", '{"prompts": [""]}', 422, "at least 1 character"),
    ("/v1/score", '{"prompts": "What is 1 + 1?"}', 422, "valid list"),
    ("/v1/score", '{"prompts": ["a"], "temperature": 1}', 422, "Extra inputs"),
    ("/v1/score", '{"prompts": ["' + "x" * 2001 + '"]}', 422, "at most 2000"),
    ("/v1/score", '{"prompts": [' + ",".join(['"p"'] * 65) + "]}", 422, "at most 64"),
    ("/v1/score", "{not json", 422, "JSON"),
    ("/v1/select", '{"prompts": ["a", "b"], "m": 3}', 422, "m=3 exceeds"),
    ("/v1/select", '{"prompts": ["a", "b"], "m": 0}', 422, "greater than or equal to 1"),
    ("/v1/select", '{"prompts": ["a", "b"], "m": 1, "tau": 1.5}', 422, "less than or equal to 1"),
    (
        "/v1/update",
        '{"prompts": ["a", "b"], "rewards": [[1.0]]}',
        422,
        "one list of rewards per prompt",
    ),
    ("/v1/update", '{"prompts": ["a"], "rewards": [[NaN]]}', 422, "finite"),
    ("/v1/update", '{"prompts": ["a"], "rewards": [[Infinity]]}', 422, "finite"),
    ("/v1/update", '{"prompts": ["a"], "rewards": [[2.0]]}', 422, "less than or equal to 1"),
    ("/v1/update", '{"prompts": ["a"], "rewards": [[-1]]}', 422, "greater than or equal to 0"),
    ("/v1/update", '{"prompts": ["a"], "rewards": [[]]}', 422, "at least 1 item"),
    ("/v1/update", '{"prompts": ["a"], "rewards": [[1]], "steps": 0}', 422, "steps"),
    ("/v1/update", '{"prompts": ["a"], "rewards": [[1]], "lr": 1}', 422, "Extra inputs"),
    # strict numbers and flags: no coercion from booleans or strings
    ("/v1/update", '{"prompts": ["a"], "rewards": [[true]]}', 422, "valid number"),
    ("/v1/update", '{"prompts": ["a"], "rewards": [["0.5"]]}', 422, "valid number"),
    ("/v1/update", '{"prompts": ["a"], "rewards": [[1]], "steps": "3"}', 422, "valid integer"),
    ("/v1/select", '{"prompts": ["a", "b"], "m": true}', 422, "valid integer"),
    ("/v1/select", '{"prompts": ["a", "b"], "m": 1, "tau": "0.5"}', 422, "valid number"),
    ("/v1/score", '{"prompts": ["a"], "truncate": "yes"}', 422, "valid boolean"),
]


@pytest.mark.parametrize(("route", "body", "status", "needle"), BAD)
def test_bad_body_is_rejected_with_a_reason(
    service_url: str, route: str, body: str, status: int, needle: str
) -> None:
    response = httpx.post(
        f"{service_url}{route}", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert needle in response.text, response.text


def test_oversize_body_is_refused_before_reading(service_url: str) -> None:
    body = '{"prompts": ["' + "y" * 70_000 + '"]}'
    response = httpx.post(
        f"{service_url}/v1/score", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "exceeds 65536 bytes" in response.json()["detail"]


def test_chunked_oversize_body_is_refused(service_url: str) -> None:
    def chunks():  # no Content-Length: the limit applies while streaming
        yield b'{"prompts": ["'
        for _ in range(80):
            yield b"z" * 1000
        yield b'"]}'

    response = httpx.post(
        f"{service_url}/v1/score", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_integer_rewards_are_accepted(service_url: str) -> None:
    """Answered once applied, which on a busy machine can take longer than one request's
    timeout: a timed-out request is sent again with the same Idempotency-Key, which waits
    for the same log entry (applied once), until the service answers or a deadline passes."""
    body = '{"prompts": ["int 1", "int 0"], "rewards": [[1], [0, 1]]}'
    headers = {"content-type": "application/json", "Idempotency-Key": "integer-rewards"}
    answers: list[httpx.Response] = []

    def answered() -> bool:
        try:
            url = f"{service_url}/v1/update"
            answers.append(httpx.post(url, content=body, headers=headers, timeout=30))
        except httpx.TimeoutException:
            return False
        return True

    wait_until(answered, "the update answered", timeout=900, interval=0)
    assert answers[-1].status_code == 200, answers[-1].text


def test_unknown_route_is_404(service_url: str) -> None:
    assert httpx.post(f"{service_url}/v1/nope", json={}).status_code == 404


def test_bad_requests_change_nothing(service_url: str, client: SweetspotClient) -> None:
    before = client.score(OK_PROMPTS)
    for route, body, _, _ in BAD:
        httpx.post(
            f"{service_url}{route}", content=body, headers={"content-type": "application/json"}
        )
    after = client.score(OK_PROMPTS)
    assert after.model_version == before.model_version
    assert after.scores == pytest.approx(before.scores, abs=1e-6)
