"""What only ``AsyncSweetspotClient`` can show: calls in flight together from one event loop,
each with its own retries and idempotency key; the same API and requests as the sync client.

The retry and error scenarios shared with ``SweetspotClient`` run on both clients in
``test_client_retries.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sweetspot_client import AsyncSweetspotClient, BadRequestError, Retries, SweetspotClient

BASE_URL = "http://sweetspot.test"
NO_WAIT = Retries(max_retries=3, initial=0.0, maximum=0.0)
UPDATE_OK = {"model_version": 1, "loss": 0.1, "mse_before": 0.2, "mae_before": 0.3}


def _update_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={**UPDATE_OK, "num_prompts": len(json.loads(request.content)["prompts"])}
    )


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr("sweetspot_client._async_client.asyncio.sleep", fake_sleep)
    yield recorded


def test_concurrent_calls_are_in_flight_together() -> None:
    """The handler answers only once all three updates arrived: a client that sent them one
    after another would never get an answer (and time out)."""
    seen: list[httpx.Request] = []
    all_arrived = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 3:
            all_arrived.set()
        await all_arrived.wait()
        return _update_ok(request)

    async def main() -> list[int]:
        async with AsyncSweetspotClient(
            base_url=BASE_URL, transport=httpx.MockTransport(handler), retries=NO_WAIT
        ) as client:
            calls = [client.update([f"p{i}"], [[1.0]]) for i in range(3)]
            answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=5.0)
        return [a.num_prompts for a in answers]

    assert asyncio.run(main()) == [1, 1, 1]
    assert len({r.headers["Idempotency-Key"] for r in seen}) == 3


def test_concurrent_updates_keep_their_own_key_across_retries(sleeps: list[float]) -> None:
    """Every update fails twice (503, then a dropped connection) before it succeeds; each
    logical update sends one key on all its attempts, and no two updates share a key."""
    attempts: dict[str, list[str]] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        prompt = json.loads(request.content)["prompts"][0]
        attempts.setdefault(key, []).append(prompt)
        if len(attempts[key]) == 1:
            return httpx.Response(503, headers={"Retry-After": "1.5"}, json={"detail": "busy"})
        if len(attempts[key]) == 2:
            raise httpx.ConnectError("connection reset")
        return _update_ok(request)

    async def main() -> None:
        retries = Retries(max_retries=3, initial=0.0, maximum=8.0)
        async with AsyncSweetspotClient(
            base_url=BASE_URL, transport=httpx.MockTransport(handler), retries=retries
        ) as client:
            await asyncio.gather(*(client.update([f"p{i}"], [[0.5]]) for i in range(4)))

    asyncio.run(main())
    assert len(attempts) == 4
    assert sorted(prompts[0] for prompts in attempts.values()) == ["p0", "p1", "p2", "p3"]
    assert all(len(set(prompts)) == 1 and len(prompts) == 3 for prompts in attempts.values())
    assert sorted(sleeps) == [0.0] * 4 + [1.5] * 4  # backoff after the reset, Retry-After


def test_close_and_async_with_close_the_connection_pool() -> None:
    async def main() -> None:
        client = AsyncSweetspotClient(base_url=BASE_URL, transport=httpx.MockTransport(_update_ok))
        async with client as entered:
            assert entered is client
            await client.update(["a"], [[1.0]])
        with pytest.raises(RuntimeError, match="client has been closed"):
            await client.update(["a"], [[1.0]])

    asyncio.run(main())


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_both_clients_have_the_same_methods_and_arguments() -> None:
    sync, aio = _public(SweetspotClient), _public(AsyncSweetspotClient)
    assert sync.keys() == aio.keys()
    for name, signature in sync.items():
        assert aio[name].parameters == signature.parameters, name
        assert inspect.iscoroutinefunction(getattr(AsyncSweetspotClient, name)), name


CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("score", (["a", "b"],), {}),
    ("select", (["a", "b", "c"], 2), {"tau": 0.3, "seed": 4, "rule": "band", "epsilon": 0.1}),
    ("update", (["a"], [[1.0, 0.0]]), {"steps": 2, "idempotency_key": "k-1"}),
    ("stats", (["a"],), {}),
    ("create_run", ("job-7",), {}),
    ("list_runs", (), {}),
    ("get_run", ("job-7",), {}),
    ("delete_run", ("job-7",), {}),
    ("health", (), {}),
]


@pytest.mark.parametrize(("method", "args", "kwargs"), CALLS, ids=[c[0] for c in CALLS])
def test_both_clients_send_the_same_request(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Request building is shared, so each method sends byte-identical requests."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(418, json={"detail": "recorded"})  # not retried, raises

    options: dict[str, Any] = {"base_url": BASE_URL, "api_key": "key", "run": "job-7"}
    with (
        SweetspotClient(transport=httpx.MockTransport(handler), **options) as client,
        pytest.raises(BadRequestError, match="418"),
    ):
        getattr(client, method)(*args, **kwargs)

    async def call_async() -> None:
        async with AsyncSweetspotClient(transport=httpx.MockTransport(handler), **options) as aio:
            await getattr(aio, method)(*args, **kwargs)

    with pytest.raises(BadRequestError, match="418"):
        asyncio.run(call_async())
    first, second = sent
    assert (first.method, first.url, first.content) == (second.method, second.url, second.content)
    assert first.headers.multi_items() == second.headers.multi_items()
