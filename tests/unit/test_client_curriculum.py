"""``PromptCurriculum`` against a fake service that scores prompts by a number in their text."""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sweetspot_client import (
    APIResponseValidationError,
    AsyncSweetspotClient,
    CurriculumBatch,
    PromptCurriculum,
    Retries,
    ServiceUnavailableError,
    SweetspotClient,
    SweetspotError,
    select_nearest,
)
from sweetspot_client.curriculum import report_key


def _p_hat(prompt: str) -> float:
    """The fake value model: the prompt states its own success probability as ``p=0.xx``."""
    match = re.search(r"p=([0-9.]+)", prompt)
    assert match, f"fake service got a prompt without p=: {prompt!r}"
    return float(match.group(1))


class FakeService:
    """Implements /v1/select with ``select_nearest`` over ``_p_hat``; records every body."""

    def __init__(self) -> None:
        self.selects: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.update_keys: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/v1/select":
            self.selects.append(body)
            scores = [_p_hat(p) for p in body["prompts"]]
            rng = random.Random(body["seed"])
            chosen = select_nearest(scores, body["m"], body["tau"], rng=rng)
            return httpx.Response(
                200,
                json={
                    "indices": chosen,
                    "scores": [scores[i] for i in chosen],
                    "candidate_scores": scores,
                    "model_version": 7,
                },
            )
        if request.url.path == "/v1/update":
            self.updates.append(body)
            self.update_keys.append(request.headers["Idempotency-Key"])
            return httpx.Response(
                200,
                json={
                    "model_version": 8,
                    "loss": 0.01,
                    "mse_before": 0.02,
                    "mae_before": 0.1,
                    "num_prompts": len(body["prompts"]),
                },
            )
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def client(service: FakeService) -> Iterator[SweetspotClient]:
    with SweetspotClient(
        base_url="http://sweetspot.test",
        transport=httpx.MockTransport(service),
        retries=Retries(max_retries=0, initial=0.0, maximum=0.0),
    ) as client:
        yield client


def _pool(n: int) -> list[str]:
    """Prompts whose p̂ spreads evenly over [0, 1), listed in shuffled order."""
    values = [i / n for i in range(n)]
    random.Random(n).shuffle(values)
    return [f"question {i}: p={v:.4f}" for i, v in enumerate(values)]


def test_next_batch_keeps_the_m_candidates_nearest_tau(
    client: SweetspotClient, service: FakeService
) -> None:
    pool = _pool(40)
    curriculum = PromptCurriculum(client, pool, m=4, k=3, tau=0.3, seed=0)
    batch = curriculum.next_batch()

    [sent] = service.selects
    assert (sent["m"], sent["tau"]) == (4, 0.3)
    assert isinstance(sent["seed"], int)
    assert len(sent["prompts"]) == 12
    assert len(set(sent["prompts"])) == 12

    assert len(batch.items) == len(batch.prompts) == len(batch.pool_indices) == 4
    assert batch.items == [pool[i] for i in batch.pool_indices]
    assert batch.prompts == batch.items
    assert batch.predicted == [_p_hat(p) for p in batch.prompts]
    assert batch.model_version == 7

    chosen = [abs(p - 0.3) for p in batch.predicted]
    rest = [abs(_p_hat(p) - 0.3) for p in sent["prompts"] if p not in batch.prompts]
    assert chosen == sorted(chosen)
    assert max(chosen) <= min(rest)


def test_next_batch_with_a_hand_checked_pool(client: SweetspotClient) -> None:
    pool = ["a p=0.9", "b p=0.55", "c p=0.1", "d p=0.48", "e p=0.0", "f p=0.7"]
    curriculum = PromptCurriculum(client, pool, m=2, k=3, seed=1)
    batch = curriculum.next_batch()
    assert batch.items == ["d p=0.48", "b p=0.55"]
    assert batch.pool_indices == [3, 1]
    assert batch.predicted == [0.48, 0.55]


def test_candidates_cover_the_pool_before_repeating(client: SweetspotClient) -> None:
    pool = [str(i) for i in range(24)]
    curriculum = PromptCurriculum(client, pool, m=2, k=3, seed=5)
    for _ in range(3):
        one_pass = [curriculum.candidates() for _ in range(24 // 6)]
        assert all(len(c) == 6 for c in one_pass)
        assert sorted(i for c in one_pass for i in c) == list(range(24))


@pytest.mark.parametrize("seed", range(10))
def test_candidates_stay_fair_when_the_pool_does_not_divide(
    client: SweetspotClient, seed: int
) -> None:
    """No prompt is offered twice before every prompt was offered once, across pass ends."""
    curriculum = PromptCurriculum(client, list("abcdefghij"), m=2, k=2, seed=seed)
    offered: Counter[int] = Counter()
    for _ in range(30):
        candidates = curriculum.candidates()
        assert len(candidates) == len(set(candidates)) == 4
        offered.update(candidates)
        counts = [offered[i] for i in range(10)]
        assert max(counts) - min(counts) <= 1, counts


def test_candidates_are_the_whole_pool_when_it_is_small(client: SweetspotClient) -> None:
    curriculum = PromptCurriculum(client, ["x", "y", "z"], m=2, k=4, seed=0)
    for _ in range(5):
        assert sorted(curriculum.candidates()) == [0, 1, 2]


def test_candidates_follow_the_seed(client: SweetspotClient) -> None:
    pool = [str(i) for i in range(50)]

    def draws(seed: int) -> list[list[int]]:
        curriculum = PromptCurriculum(client, pool, m=5, k=2, seed=seed)
        return [curriculum.candidates() for _ in range(3)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


@dataclass(frozen=True)
class Problem:
    question: str
    answer: int


@dataclass(frozen=True)
class Task:
    prompt: str


RECORDS: list[tuple[list[Any], dict[str, Any]]] = [
    (["q0 p=0.1", "q1 p=0.5", "q2 p=0.9"], {}),
    ([{"prompt": "q0 p=0.1"}, {"prompt": "q1 p=0.5"}, {"prompt": "q2 p=0.9"}], {}),
    (
        [{"question": "q0 p=0.1"}, {"question": "q1 p=0.5"}, {"question": "q2 p=0.9"}],
        {"prompt_key": "question"},
    ),
    ([Task("q0 p=0.1"), Task("q1 p=0.5"), Task("q2 p=0.9")], {}),
    (
        [Problem("q0 p=0.1", 1), Problem("q1 p=0.5", 2), Problem("q2 p=0.9", 3)],
        {"prompt_key": "question"},
    ),
    ([(1, "q0 p=0.1"), (2, "q1 p=0.5"), (3, "q2 p=0.9")], {"prompt_fn": lambda r: r[1]}),
]


@pytest.mark.parametrize(
    ("pool", "options"),
    RECORDS,
    ids=["str", "dict", "dict-key", "attr", "attr-key", "prompt_fn"],
)
def test_record_kinds(
    client: SweetspotClient, service: FakeService, pool: list[Any], options: dict[str, Any]
) -> None:
    curriculum = PromptCurriculum(client, pool, m=1, k=3, seed=0, **options)
    batch = curriculum.next_batch()
    assert batch.items == [pool[1]]
    assert batch.prompts == ["q1 p=0.5"]
    assert sorted(service.selects[0]["prompts"]) == ["q0 p=0.1", "q1 p=0.5", "q2 p=0.9"]


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"question": "q p=0.5"}, KeyError),
        ({"prompt": 42}, KeyError),
        (Problem("q p=0.5", 1), TypeError),
        (3.5, TypeError),
    ],
    ids=["dict-missing", "dict-not-str", "object-missing", "number"],
)
def test_record_without_a_prompt_says_how_to_fix(
    client: SweetspotClient, service: FakeService, record: object, error: type[Exception]
) -> None:
    curriculum = PromptCurriculum(client, [record], m=1)
    with pytest.raises(error, match="pass prompt_key= or prompt_fn="):
        curriculum.next_batch()
    assert service.selects == []


def test_report_sends_the_batch_prompts_with_their_rewards(
    client: SweetspotClient, service: FakeService
) -> None:
    pool = _pool(12)
    curriculum = PromptCurriculum(client, pool, m=3, k=2, seed=2)
    batch = curriculum.next_batch()
    rewards = [(1.0, 0.0), [1.0], [0.0, 0.0, 1.0]]
    response = curriculum.report(batch, rewards)
    assert response.model_version == 8
    assert response.num_prompts == 3
    [sent] = service.updates
    assert sent["prompts"] == batch.prompts
    assert sent["rewards"] == [[1.0, 0.0], [1.0], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize("count", [2, 4])
def test_report_rejects_a_wrong_number_of_reward_lists(
    client: SweetspotClient, service: FakeService, count: int
) -> None:
    curriculum = PromptCurriculum(client, _pool(12), m=3, k=2, seed=2)
    batch = curriculum.next_batch()
    with pytest.raises(ValueError, match=f"got {count} reward lists for a batch of 3 prompts"):
        curriculum.report(batch, [[1.0]] * count)
    assert service.updates == []


@pytest.mark.parametrize(
    ("pool", "options", "message"),
    [
        ([], {"m": 1}, "pool is empty"),
        (["a", "b"], {"m": 3}, "m=3 exceeds the pool's 2 prompts"),
        (["a", "b"], {"m": 0}, "m and k must be >= 1"),
        (["a", "b"], {"m": 1, "k": 0}, "m and k must be >= 1"),
    ],
    ids=["empty", "m-too-big", "m-zero", "k-zero"],
)
def test_constructor_errors(
    client: SweetspotClient, pool: list[str], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PromptCurriculum(client, pool, **options)


# The async path: anext_batch / areport with an AsyncSweetspotClient

NO_RETRY = Retries(max_retries=0, initial=0.0, maximum=0.0)


def _async_client(handler: Any) -> AsyncSweetspotClient:
    return AsyncSweetspotClient(
        base_url="http://sweetspot.test", transport=httpx.MockTransport(handler), retries=NO_RETRY
    )


def _run_sync(curriculum: PromptCurriculum[str], steps: int) -> list[CurriculumBatch[str]]:
    batches = [curriculum.next_batch() for _ in range(steps)]
    for batch in batches:
        curriculum.report(batch, [[1.0, 0.0]] * len(batch.prompts))
    return batches


def _run_async(make: Any, steps: int, handler: Any, **options: Any) -> list[CurriculumBatch[str]]:
    async def main() -> list[CurriculumBatch[str]]:
        async with _async_client(handler) as client:
            curriculum = make(client, **options)
            batches = [await curriculum.anext_batch() for _ in range(steps)]
            for batch in batches:
                await curriculum.areport(batch, [[1.0, 0.0]] * len(batch.prompts))
            return batches

    return asyncio.run(main())


@pytest.mark.parametrize("seed", [0, 3])
def test_anext_batch_and_areport_equal_the_sync_path(seed: int) -> None:
    """Same seed and job: same candidates, choices, seeds sent, bodies and idempotency keys."""
    pool = _pool(30)

    def make(c: Any) -> PromptCurriculum[str]:
        return PromptCurriculum(c, pool, m=3, k=2, seed=seed, job_id="job")

    sync_service, async_service = FakeService(), FakeService()
    with SweetspotClient(
        base_url="http://sweetspot.test",
        transport=httpx.MockTransport(sync_service),
        retries=NO_RETRY,
    ) as sync_client:
        expected = _run_sync(make(sync_client), 6)
    got = _run_async(make, 6, async_service)

    assert got == expected
    assert [b.step for b in got] == list(range(6))
    assert len({b.idempotency_key for b in got}) == 6
    assert async_service.selects == sync_service.selects
    assert async_service.updates == sync_service.updates
    sent = [report_key(b.idempotency_key, b.prompts, [[1.0, 0.0]] * 3) for b in expected]
    assert async_service.update_keys == sync_service.update_keys == sent


def test_async_fallback_equals_the_sync_fallback() -> None:
    """An outage draws the same uniform records on both paths, and the quiet period after it
    skips the service on both."""
    pool = _pool(20)
    down = {"calls": 0}

    def unavailable(request: httpx.Request) -> httpx.Response:
        down["calls"] += 1
        return httpx.Response(503, json={"detail": "down"})

    def make(c: Any) -> PromptCurriculum[str]:
        return PromptCurriculum(
            c, pool, m=2, k=3, seed=9, job_id="j", on_error="uniform", select_retries=NO_RETRY
        )

    with SweetspotClient(
        base_url="http://sweetspot.test",
        transport=httpx.MockTransport(unavailable),
        retries=NO_RETRY,
    ) as sync_client:
        curriculum = make(sync_client)
        expected = [curriculum.next_batch() for _ in range(3)]

    async def main() -> list[CurriculumBatch[str]]:
        async with _async_client(unavailable) as client:
            curriculum = make(client)
            return [await curriculum.anext_batch() for _ in range(3)]

    got = asyncio.run(main())
    assert got == expected
    assert down["calls"] == 2  # one select per path; the later steps stayed quiet
    assert all(b.fallback and b.model_version is None for b in got)
    assert "ServiceUnavailableError" in (got[0].fallback or "")
    assert "retry_after_s" in (got[1].fallback or "")


def test_anext_batch_raises_by_default() -> None:
    async def main() -> None:
        async with _async_client(lambda r: httpx.Response(503, json={"detail": "down"})) as c:
            await PromptCurriculum(c, _pool(8), m=2).anext_batch()

    with pytest.raises(ServiceUnavailableError, match="down"):
        asyncio.run(main())


def test_prefetch_overlaps_the_report_of_the_current_step() -> None:
    """The update is answered only once the next step's select has arrived, so the loop
    below finishes only if the prefetch task selects while ``areport`` is in flight."""
    service = FakeService()
    second_select = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/update":
            await second_select.wait()
        response = service(request)
        if len(service.selects) == 2:
            second_select.set()
        return response

    async def main() -> tuple[CurriculumBatch[str], CurriculumBatch[str]]:
        async with _async_client(handler) as client:
            curriculum = PromptCurriculum(client, _pool(24), m=2, k=3, seed=1)
            first = await curriculum.anext_batch()
            prefetch = asyncio.create_task(curriculum.anext_batch())
            await asyncio.wait_for(curriculum.areport(first, [[1.0], [0.0]]), timeout=5.0)
            return first, await prefetch

    first, second = asyncio.run(main())
    assert (first.step, second.step) == (0, 1)
    assert set(first.candidates or []).isdisjoint(second.candidates or [])
    assert service.update_keys == [report_key(first.idempotency_key, first.prompts, [[1], [0]])]


def test_sync_methods_refuse_an_async_client_and_back() -> None:
    async def main(sync_client: SweetspotClient) -> None:
        async with _async_client(FakeService()) as aio:
            on_async = PromptCurriculum(aio, ["a p=0.1", "b p=0.5"], m=1)
            with pytest.raises(TypeError, match=r"await curriculum\.anext_batch\(\)"):
                on_async.next_batch()
            batch = await on_async.anext_batch()
            with pytest.raises(TypeError, match=r"await curriculum.areport\(...\)"):
                on_async.report(batch, [[1.0]])
        on_sync = PromptCurriculum(sync_client, ["a p=0.1", "b p=0.5"], m=1)
        with pytest.raises(TypeError, match="needs an AsyncSweetspotClient"):
            await on_sync.anext_batch()
        with pytest.raises(TypeError, match="needs an AsyncSweetspotClient"):
            await on_sync.areport(on_sync.next_batch(), [[1.0]])

    service = FakeService()
    with SweetspotClient(
        base_url="http://sweetspot.test", transport=httpx.MockTransport(service), retries=NO_RETRY
    ) as sync_client:
        asyncio.run(main(sync_client))
    assert len(service.selects) == 1 and service.updates == []


def _html(request: httpx.Request) -> httpx.Response:
    """A proxy's error page, answered with 200."""
    return httpx.Response(200, text="<html><body>Bad gateway</body></html>")


def test_a_2xx_that_is_not_json_is_a_sweetspot_error_and_falls_back() -> None:
    """Issue 19.11: pydantic's ValidationError escaped ``on_error="uniform"``."""
    with SweetspotClient(
        base_url="http://sweetspot.test", transport=httpx.MockTransport(_html), retries=NO_RETRY
    ) as client:
        with pytest.raises(APIResponseValidationError, match="not a Sweetspot answer"):
            client.score(["a"])
        batch = PromptCurriculum(client, _pool(8), m=2, on_error="uniform").next_batch()
        assert batch.fallback is not None and "APIResponseValidationError" in batch.fallback

    async def main() -> CurriculumBatch[str]:
        async with _async_client(_html) as aio:
            return await PromptCurriculum(aio, _pool(8), m=2, on_error="uniform").anext_batch()

    assert asyncio.run(main()).fallback is not None


def test_selection_has_its_own_short_budget_when_it_can_fall_back() -> None:
    """Issue 19.11: against a hung service ``next_batch`` fell back only after the client's
    update budget (60 s x 5 attempts)."""
    seen: list[float | None] = []

    def hung(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"]["read"])
        raise httpx.ReadTimeout("hung", request=request)

    patient = Retries(max_retries=4, initial=0.0, maximum=0.0)
    with SweetspotClient(
        base_url="http://sweetspot.test", transport=httpx.MockTransport(hung), retries=patient
    ) as client:
        batch = PromptCurriculum(client, _pool(8), m=2, on_error="uniform").next_batch()
        assert batch.fallback is not None and "APITimeoutError" in batch.fallback
        assert seen == [5.0, 5.0]  # 5 s per attempt, one retry
        seen.clear()
        raising = PromptCurriculum(client, _pool(8), m=2)  # raise: the client's own budget
        with pytest.raises(SweetspotError):
            raising.next_batch()
        assert seen == [60.0] * 5


def test_background_reports_wait_out_an_outage_and_are_checkpointed() -> None:
    """Issue 19.11: ``report()`` raised during an outage, stopping the README's loop."""
    service, resumed_service = FakeService(), FakeService()
    down = threading.Event()
    down.set()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/update" and down.is_set():
            raise httpx.ConnectError("refused", request=request)
        return service(request)

    with (
        SweetspotClient(
            base_url="http://sweetspot.test",
            transport=httpx.MockTransport(handler),
            retries=NO_RETRY,
        ) as client,
        SweetspotClient(
            base_url="http://sweetspot.test",
            transport=httpx.MockTransport(resumed_service),
            retries=NO_RETRY,
        ) as resumed_client,
    ):
        options: dict[str, Any] = {"m": 2, "seed": 0, "report_backoff_s": (0.01, 0.01)}
        curriculum = PromptCurriculum(client, _pool(20), **options)
        batches = [curriculum.next_batch() for _ in range(3)]
        for batch in batches:
            assert curriculum.report(batch, [[1.0], [0.0]], background=True) is None
        assert curriculum.pending_reports() == 3
        assert not curriculum.flush(0.05)
        saved = json.loads(json.dumps(curriculum.state_dict()))
        keys = [report_key(b.idempotency_key, b.prompts, [[1.0], [0.0]]) for b in batches]
        assert [r["key"] for r in saved["pending_reports"]] == keys

        down.clear()
        assert curriculum.flush(10) and curriculum.pending_reports() == 0
        assert service.update_keys == keys  # in order, each under its step's key
        assert [u["prompts"] for u in service.updates] == [b.prompts for b in batches]
        assert curriculum.close() == []

        resumed = PromptCurriculum(resumed_client, _pool(20), **options)
        resumed.load_state_dict(saved)  # a restart from the checkpoint taken in the outage
        assert resumed.flush(10)
        assert resumed_service.update_keys == keys
        assert resumed.state_dict()["pending_reports"] == []
