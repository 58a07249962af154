"""Retries, error mapping and headers of ``SweetspotClient`` and ``AsyncSweetspotClient``,
over ``httpx.MockTransport``: every scenario runs on both clients (``make_client``)."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from sweetspot_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncSweetspotClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    Retries,
    ServiceUnavailableError,
    SweetspotClient,
)

BASE_URL = "http://sweetspot.test"
NO_WAIT = Retries(max_retries=3, initial=0.0, maximum=0.0)
SCORE_OK = {"scores": [0.5], "model_version": 0}
UPDATE_OK = {
    "model_version": 1,
    "loss": 0.1,
    "mse_before": 0.2,
    "mae_before": 0.3,
    "num_prompts": 1,
}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that replays ``script`` and keeps every request it saw.

    Each script entry is a response to return or an exception to raise; the last entry
    repeats once the script runs out.
    """

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(step, Exception):
            raise step
        return step


class Blocking:
    """An ``AsyncSweetspotClient`` behind blocking methods, each call in its own event loop
    (MockTransport holds no connections across loops), so one scenario tests both clients."""

    def __init__(self, client: AsyncSweetspotClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if not inspect.iscoroutinefunction(method):
            return method
        return lambda *args, **kwargs: asyncio.run(method(*args, **kwargs))


ClientFactory = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    """Builds the parametrised kind of client over a handler; closes them all afterwards."""
    made: list[SweetspotClient | AsyncSweetspotClient] = []

    def make(
        handler: Handler, *, retries: Retries = NO_WAIT, api_key: str | None = None
    ) -> SweetspotClient | Blocking:
        options = {"base_url": BASE_URL, "retries": retries, "api_key": api_key}
        transport = httpx.MockTransport(handler)
        if request.param == "sync":
            made.append(SweetspotClient(transport=transport, **options))
            return made[-1]
        client = AsyncSweetspotClient(transport=transport, **options)
        made.append(client)
        return Blocking(client)

    yield make
    for client in made:
        if isinstance(client, AsyncSweetspotClient):
            asyncio.run(client.close())
        else:
            client.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Every backoff either client asks for, instead of actually sleeping."""
    recorded: list[float] = []

    async def async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr("sweetspot_client._client.time.sleep", recorded.append)
    monkeypatch.setattr("sweetspot_client._async_client.asyncio.sleep", async_sleep)
    yield recorded


def test_retries_503_then_succeeds(sleeps: list[float], make_client: ClientFactory) -> None:
    handler = Recorder(
        httpx.Response(503, json={"detail": "model loading"}),
        httpx.Response(503, json={"detail": "model loading"}),
        httpx.Response(200, json=SCORE_OK),
    )
    result = make_client(handler).score(["What is 2 + 2?"])
    assert result.scores == [0.5]
    assert len(handler.requests) == 3
    assert sleeps == [0.0, 0.0]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 504])
def test_retries_transient_statuses(
    status: int, sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(
        httpx.Response(status, json={"detail": "busy"}), httpx.Response(200, json=SCORE_OK)
    )
    assert make_client(handler).score(["a"]).model_version == 0
    assert len(handler.requests) == 2


def test_retries_connection_error_then_succeeds(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.ConnectError("connection refused"), httpx.Response(200, json=SCORE_OK))
    assert make_client(handler).score(["a"]).scores == [0.5]
    assert len(handler.requests) == 2
    assert len(sleeps) == 1


def test_gives_up_on_503_after_max_retries(sleeps: list[float], make_client: ClientFactory) -> None:
    handler = Recorder(httpx.Response(503, json={"detail": "model not loaded yet"}))
    with pytest.raises(ServiceUnavailableError) as info:
        make_client(handler).score(["a"])
    assert len(handler.requests) == 1 + NO_WAIT.max_retries
    assert len(sleeps) == NO_WAIT.max_retries
    error = info.value
    assert error.status_code == 503
    assert error.response.status_code == 503
    assert error.request is handler.requests[-1]
    assert error.request.url == f"{BASE_URL}/v1/score"
    assert "model not loaded yet" in str(error)


def test_gives_up_on_429_with_rate_limit_error(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(429, json={"detail": "queue full"}))
    with pytest.raises(RateLimitError, match="queue full"):
        make_client(handler).score(["a"])
    assert len(handler.requests) == 1 + NO_WAIT.max_retries


def test_gives_up_on_connection_error_after_max_retries(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.ConnectError("connection refused"))
    with pytest.raises(APIConnectionError) as info:
        make_client(handler).score(["a"])
    assert type(info.value) is APIConnectionError
    assert len(handler.requests) == 1 + NO_WAIT.max_retries
    assert info.value.request is handler.requests[-1]
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert BASE_URL in str(info.value)


def test_gives_up_on_timeout_with_timeout_error(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.ReadTimeout("read timed out"))
    with pytest.raises(APITimeoutError) as info:
        make_client(handler).score(["a"])
    assert len(handler.requests) == 1 + NO_WAIT.max_retries
    assert info.value.request.url.path == "/v1/score"


def test_zero_max_retries_tries_once(sleeps: list[float], make_client: ClientFactory) -> None:
    handler = Recorder(httpx.Response(503, json={"detail": "down"}))
    client = make_client(handler, retries=Retries(max_retries=0, initial=0.0, maximum=0.0))
    with pytest.raises(ServiceUnavailableError):
        client.score(["a"])
    assert len(handler.requests) == 1
    assert sleeps == []


def test_422_is_not_retried_and_carries_the_detail(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    detail = [
        {
            "type": "too_short",
            "loc": ["body", "prompts", 0],
            "msg": "String should have at least 1 character",
        }
    ]
    handler = Recorder(httpx.Response(422, json={"detail": detail}))
    with pytest.raises(BadRequestError) as info:
        make_client(handler).score(["a"])
    assert len(handler.requests) == 1
    assert sleeps == []
    assert info.value.status_code == 422
    assert "String should have at least 1 character" in str(info.value)
    assert "/v1/score" in str(info.value)


@pytest.mark.parametrize("status", [400, 413])
def test_other_client_errors_are_bad_requests(
    status: int, sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(status, json={"detail": "at most 256 prompts per request"}))
    with pytest.raises(BadRequestError, match="at most 256 prompts per request"):
        make_client(handler).score(["a"])
    assert len(handler.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_is_not_retried(
    status: int, sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(status, json={"detail": "missing or invalid API key"}))
    with pytest.raises(AuthenticationError, match="missing or invalid API key") as info:
        make_client(handler).score(["a"])
    assert info.value.status_code == status
    assert len(handler.requests) == 1


def test_conflict_is_not_retried(sleeps: list[float], make_client: ClientFactory) -> None:
    handler = Recorder(httpx.Response(409, json={"detail": "key reused with a different body"}))
    with pytest.raises(ConflictError, match="different body"):
        make_client(handler).update(["a"], [[1.0]])
    assert len(handler.requests) == 1


def test_conflict_in_progress_is_retried(sleeps: list[float], make_client: ClientFactory) -> None:
    handler = Recorder(
        httpx.Response(409, json={"detail": "an update with this key is in progress"}),
        httpx.Response(200, json=UPDATE_OK),
    )
    assert make_client(handler).update(["a"], [[1.0]]).model_version == 1
    assert len(handler.requests) == 2


@pytest.mark.parametrize(
    "body",
    [{"text": "<html>Bad Gateway</html>"}, {"json": ["not", "an", "object"]}],
    ids=["html", "json-list"],
)
def test_error_body_that_is_not_a_detail_object(
    body: dict[str, Any], sleeps: list[float], make_client: ClientFactory
) -> None:
    """A proxy's error page still becomes a typed error that shows the body."""
    response = httpx.Response(502, **body)  # one per test: sending binds it to a client kind
    with pytest.raises(ServiceUnavailableError) as info:
        make_client(Recorder(response)).score(["a"])
    assert response.text in str(info.value)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_sets_the_wait(
    status: int, sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(
        httpx.Response(status, headers={"Retry-After": "2"}, json={"detail": "busy"}),
        httpx.Response(status, headers={"Retry-After": "30"}, json={"detail": "busy"}),
        httpx.Response(200, json=SCORE_OK),
    )
    client = make_client(handler, retries=Retries(max_retries=3, initial=0.0, maximum=8.0))
    assert client.score(["a"]).scores == [0.5]
    assert sleeps == [2.0, 8.0]


def test_update_reuses_one_idempotency_key_across_retries(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(
        httpx.Response(503, json={"detail": "busy"}),
        httpx.ConnectError("reset"),
        httpx.Response(200, json=UPDATE_OK),
    )
    client = make_client(handler)
    client.update(["a"], [[1.0, 0.0]])
    first_call = [r.headers["Idempotency-Key"] for r in handler.requests]
    assert len(first_call) == 3
    assert len(set(first_call)) == 1

    handler.requests.clear()
    client.update(["a"], [[1.0, 0.0]])
    second_call = {r.headers["Idempotency-Key"] for r in handler.requests}
    assert len(second_call) == 1
    assert second_call.isdisjoint(first_call)


def test_update_sends_a_given_idempotency_key(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(200, json=UPDATE_OK))
    make_client(handler).update(["a"], [[1.0]], idempotency_key="step-42")
    assert handler.requests[0].headers["Idempotency-Key"] == "step-42"


def test_update_sends_the_schema_body(sleeps: list[float], make_client: ClientFactory) -> None:
    handler = Recorder(httpx.Response(200, json=UPDATE_OK))
    make_client(handler).update(["a", "b"], [[1.0, 0.0], [0.5]], steps=2)
    [request] = handler.requests
    assert request.method == "POST"
    assert request.url == f"{BASE_URL}/v1/update"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "prompts": ["a", "b"],
        "rewards": [[1.0, 0.0], [0.5]],
        "steps": 2,
        "run": "default",
    }


def test_invalid_request_is_rejected_before_sending(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(200, json=UPDATE_OK))
    with pytest.raises(ValidationError, match="one list of rewards per prompt"):
        make_client(handler).update(["a", "b"], [[1.0]])
    assert handler.requests == []


def test_bearer_token_sent_when_api_key_given(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(200, json=SCORE_OK))
    make_client(handler, api_key="s3cret").score(["a"])
    assert handler.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_no_authorization_header_without_api_key(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(200, json=SCORE_OK))
    make_client(handler).score(["a"])
    assert "Authorization" not in handler.requests[0].headers


def test_health_is_not_retried_and_reports_loading(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(503, json={"status": "loading", "ready": False}))
    health = make_client(handler).health()
    assert (health.status, health.ready) == ("loading", False)
    assert len(handler.requests) == 1
    assert handler.requests[0].url.path == "/readyz"


def test_wait_ready_raises_when_the_service_failed(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    body = {"status": "failed", "ready": False, "detail": "out of GPU memory"}
    handler = Recorder(httpx.Response(503, json=body))
    with pytest.raises(RuntimeError, match="out of GPU memory"):
        make_client(handler).wait_ready(timeout=5.0)


def test_wait_ready_polls_until_ready(sleeps: list[float], make_client: ClientFactory) -> None:
    handler = Recorder(
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"status": "loading", "ready": False}),
        httpx.Response(200, json={"status": "ok", "ready": True, "model_version": 0}),
    )
    assert make_client(handler).wait_ready(timeout=60.0, interval=0.25).ready
    assert sleeps == [0.25, 0.25]


# Retries.delay, directly


POLICY = Retries(initial=0.5, maximum=8.0)


def _with_retry_after(value: str) -> httpx.Response:
    return httpx.Response(503, headers={"Retry-After": value})


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0.25", 0.25), ("0", 0.0)])
def test_delay_honours_numeric_retry_after(header: str, expected: float) -> None:
    assert POLICY.delay(0, _with_retry_after(header)) == expected
    assert POLICY.delay(5, _with_retry_after(header)) == expected


def test_delay_caps_retry_after_at_maximum() -> None:
    assert POLICY.delay(0, _with_retry_after("120")) == 8.0
    assert NO_WAIT.delay(0, _with_retry_after("120")) == 0.0


def test_delay_treats_negative_retry_after_as_zero() -> None:
    assert POLICY.delay(0, _with_retry_after("-5")) == 0.0


def test_delay_honours_http_date_retry_after() -> None:
    future = format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    past = format_datetime(datetime.now(timezone.utc) - timedelta(hours=1), usegmt=True)
    assert POLICY.delay(0, _with_retry_after(future)) == 8.0
    assert POLICY.delay(0, _with_retry_after(past)) == 0.0


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 10])
@pytest.mark.parametrize("response", [None, httpx.Response(503), _with_retry_after("soon")])
def test_delay_grows_exponentially_with_jitter(
    attempt: int, response: httpx.Response | None
) -> None:
    base = min(0.5 * 2**attempt, 8.0)
    delays = [POLICY.delay(attempt, response) for _ in range(200)]
    assert all(0.75 * base <= d <= base for d in delays)
    assert len(set(delays)) > 1
    assert max(delays) - min(delays) > 0.1 * base


def test_no_wait_policy_never_waits() -> None:
    assert all(NO_WAIT.delay(attempt, None) == 0.0 for attempt in range(10))


RUN_INFO = {"name": "r1", "model_version": 0, "checkpointed_version": 0, "pending_updates": 0}
UNKNOWN = {"detail": "run 'r1' does not exist: create it with POST /v1/runs"}


def test_a_404_for_a_run_this_client_just_created_is_retried(
    sleeps: list[float], make_client: ClientFactory
) -> None:
    """Behind a load balancer the next replica may not know a run created a moment ago."""
    handler = Recorder(
        httpx.Response(201, json=RUN_INFO),
        httpx.Response(404, json=UNKNOWN),
        httpx.Response(200, json=SCORE_OK),
    )
    client = make_client(handler)
    client.create_run("r1")
    target = client.client if isinstance(client, Blocking) else client
    target.run = "r1"
    assert client.score(["x"]).scores == [0.5]
    assert len(handler.requests) == 3 and len(sleeps) == 1


@pytest.mark.parametrize(
    "detail",
    [
        "run 'r1' does not exist: create it with POST /v1/runs",  # never created here
        "update not accepted: run 'r1' was deleted (or deleted and created again)",
    ],
)
def test_other_404s_are_answers(
    detail: str, sleeps: list[float], make_client: ClientFactory
) -> None:
    created = "deleted" in detail  # a deleted run's 404 is final even just after creating it
    handler = Recorder(
        *([httpx.Response(201, json=RUN_INFO)] if created else []),
        httpx.Response(404, json={"detail": detail}),
        httpx.Response(200, json=SCORE_OK),
    )
    client = make_client(handler)
    if created:
        client.create_run("r1")
    target = client.client if isinstance(client, Blocking) else client
    target.run = "r1"
    with pytest.raises(NotFoundError):
        client.score(["x"])
    assert sleeps == []


def test_the_404_grace_ends(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float], make_client: ClientFactory
) -> None:
    handler = Recorder(httpx.Response(201, json=RUN_INFO), httpx.Response(404, json=UNKNOWN))
    client = make_client(handler, retries=Retries(max_retries=3, created_run_grace=0.0))
    client.create_run("r1")
    target = client.client if isinstance(client, Blocking) else client
    target.run = "r1"
    with pytest.raises(NotFoundError):
        client.score(["x"])
    assert len(handler.requests) == 2
