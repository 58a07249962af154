"""The parts every trainer integration shares: resumable curriculum, outage policy, reward
mapping, prompt text, grouping, and the background reporter (against fake transports)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_client_curriculum import FakeService, _pool

from sweetspot_client import PromptCurriculum, Retries, SweetspotClient
from sweetspot_client.curriculum import report_key
from sweetspot_client.integrations import (
    BackgroundReporter,
    PendingReport,
    SweetspotConfig,
    default_prompt_text,
    group_rewards,
)

NO_RETRY = Retries(max_retries=0, initial=0.0, maximum=0.0)


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> SweetspotClient:
    return SweetspotClient(
        base_url="http://sweetspot.test", transport=httpx.MockTransport(handler), retries=NO_RETRY
    )


def test_a_restored_curriculum_draws_the_same_candidates_under_the_same_keys() -> None:
    service = FakeService()
    original = PromptCurriculum(_client(service), _pool(30), m=2, k=3, seed=4)
    original.next_batch()
    saved = json.loads(json.dumps(original.state_dict()))  # it must survive JSON
    expected = [original.next_batch() for _ in range(6)]  # crosses the end of the pass

    resumed = PromptCurriculum(_client(FakeService()), _pool(30), m=2, k=3, seed=99)
    resumed.load_state_dict(saved)
    again = [resumed.next_batch() for _ in range(6)]
    assert [b.candidates for b in again] == [b.candidates for b in expected]
    assert [b.idempotency_key for b in again] == [b.idempotency_key for b in expected]
    assert [b.step for b in again] == list(range(1, 7))


def test_state_for_another_pool_is_refused() -> None:
    curriculum = PromptCurriculum(_client(FakeService()), _pool(30), m=2, seed=0)
    other = PromptCurriculum(_client(FakeService()), _pool(31), m=2, seed=0)
    with pytest.raises(ValueError, match="same dataset"):
        other.load_state_dict(curriculum.state_dict())


def test_a_resent_report_reuses_its_key_and_a_redone_step_gets_another() -> None:
    """Issue 19.12: a step redone after a resume reused the step's key with other rewards,
    got 409 and its observations were lost. The same body keeps one key (applied once);
    another body of the same step gets its own (applied)."""
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/update":
            keys.append(request.headers["Idempotency-Key"])
        return FakeService()(request)

    curriculum = PromptCurriculum(_client(handler), _pool(20), m=2, seed=0)
    saved = curriculum.state_dict()
    batch = curriculum.next_batch()
    curriculum.report(batch, [[1.0], [0.0]])
    curriculum.report(batch, [[1.0], [0.0]])  # a resend
    curriculum.report(batch, [[1.0], [1.0]])  # the same step, observed otherwise
    resumed = PromptCurriculum(_client(handler), _pool(20), m=2, seed=0)
    resumed.load_state_dict(saved)
    redone = resumed.next_batch()
    resumed.report(redone, [[1], [0]])  # ints: the same body as [[1.0], [0.0]]
    assert redone.idempotency_key == batch.idempotency_key  # the step's key
    assert keys[0] == keys[1] == keys[3] != keys[2]
    assert keys[0] == report_key(batch.idempotency_key, batch.prompts, [[1.0], [0.0]])
    assert keys[0].startswith(f"sweetspot-{curriculum.job_id}-default-0-")
    assert report_key("s", ["a", "b"], [[1.0], [0.0]]) != report_key(
        "s", ["b", "a"], [[1.0], [0.0]]
    )


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_uniform_fallback_keeps_m_candidates_and_waits_before_asking_again() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return _refused(request)

    curriculum = PromptCurriculum(
        _client(handler),
        _pool(20),
        m=3,
        k=2,
        seed=0,
        on_error="uniform",
        retry_after_s=3600,
        select_retries=NO_RETRY,
    )
    first, second = curriculum.next_batch(), curriculum.next_batch()
    assert calls == ["/v1/select"]  # the second draw did not wait on a dead service
    for batch in (first, second):
        assert batch.fallback is not None and batch.model_version is None
        assert len(batch.pool_indices) == 3
        assert set(batch.pool_indices) <= set(batch.candidates or [])
    assert "APIConnectionError" in (first.fallback or "")


def test_on_error_raise_raises() -> None:
    curriculum = PromptCurriculum(_client(_refused), _pool(20), m=3, seed=0)
    with pytest.raises(Exception, match="cannot reach Sweetspot"):
        curriculum.next_batch()


@pytest.mark.parametrize(
    ("options", "reward", "expected"),
    [
        ({}, 0.25, 0.25),
        ({"reward_range": (-1.0, 1.0)}, 0.0, 0.5),
        ({"success_threshold": 0.9}, 0.95, 1.0),
        ({"success_threshold": 0.9}, 0.5, 0.0),
        ({"reward_fn": lambda r: r / 10}, 5.0, 0.5),
    ],
)
def test_rewards_map_onto_unit_interval(
    options: dict[str, Any], reward: float, expected: float
) -> None:
    assert SweetspotConfig(**options).map_reward(reward) == pytest.approx(expected)


def test_a_reward_outside_unit_interval_names_the_options() -> None:
    with pytest.raises(ValueError, match=r"reward_range=.*success_threshold.*reward_fn"):
        SweetspotConfig().map_reward(1.5)
    with pytest.raises(ValueError, match=r"with reward_range=\(0.0, 1.0\)"):
        SweetspotConfig(reward_range=(0.0, 1.0)).map_reward(-0.5)
    assert math.isnan(SweetspotConfig().map_reward(math.nan))


def test_config_rejects_two_mappings_and_empty_ranges() -> None:
    with pytest.raises(ValueError, match="at most one"):
        SweetspotConfig(reward_range=(0, 1), success_threshold=0.5)
    with pytest.raises(ValueError, match="high > low"):
        SweetspotConfig(reward_range=(1, 1))


def test_prompt_text_of_plain_chat_and_multimodal_prompts() -> None:
    assert default_prompt_text("2 + 2?") == "2 + 2?"
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": "2 + 2?"},
    ]
    assert default_prompt_text(chat) == "2 + 2?"
    parts = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what?"}]}]
    assert default_prompt_text(parts) == "what?"
    with pytest.raises(TypeError, match="prompt_fn"):
        default_prompt_text(42)


def test_group_rewards_keeps_first_seen_order_and_leaves_out_nan() -> None:
    rows = [7, 7, 3, 3, 9, 9]
    rewards = [1.0, 0.0, math.nan, 0.5, math.nan, math.nan]
    assert group_rewards(rows, rewards) == ([7, 3], [[1.0, 0.0], [0.5]])


class Scripted:
    """A /v1/update endpoint that answers with the given statuses in turn, then 200."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.keys: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        self.gate.wait(10)
        self.keys.append(request.headers["Idempotency-Key"])
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 0:
            raise httpx.ConnectError("refused", request=request)
        if status != 200:
            return httpx.Response(status, json={"detail": f"scripted {status}"})
        body = json.loads(request.content)
        return httpx.Response(
            200,
            json={
                "model_version": len(self.keys),
                "loss": 0.0,
                "mse_before": 0.0,
                "mae_before": 0.2,
                "num_prompts": len(body["prompts"]),
            },
        )


def _report(step: int) -> PendingReport:
    return PendingReport(f"key-{step}", step, [f"prompt {step}"], [[1.0, 0.0]])


def test_reporter_retries_with_the_same_key_until_it_lands() -> None:
    endpoint = Scripted(0, 503)
    reporter = BackgroundReporter(_client(endpoint), backoff_s=(0.0, 0.0))
    reporter.submit(_report(0))
    reporter.submit(_report(1))
    assert reporter.flush(10)
    assert endpoint.keys == ["key-0", "key-0", "key-0", "key-1"]
    assert reporter.counts.sent == 2 and reporter.counts.failures == 2
    assert reporter.last_response is not None and reporter.last_response.mae_before == 0.2


def test_reporter_drops_a_conflict_and_a_bad_request_without_retrying() -> None:
    endpoint = Scripted(409, 422)
    reporter = BackgroundReporter(_client(endpoint), backoff_s=(0.0, 0.0))
    for step in range(3):
        reporter.submit(_report(step))
    assert reporter.flush(10)
    assert endpoint.keys == ["key-0", "key-1", "key-2"]
    assert (reporter.counts.conflicts, reporter.counts.dropped, reporter.counts.sent) == (1, 1, 1)


def test_reporter_bounds_what_waits_and_snapshots_it() -> None:
    endpoint = Scripted()
    endpoint.gate.clear()  # the first report hangs in flight
    reporter = BackgroundReporter(_client(endpoint), max_pending=2, backoff_s=(0.0, 0.0))
    reporter.submit(_report(0))
    assert endpoint.entered.wait(10)
    for step in (1, 2, 3):
        reporter.submit(_report(step))
    # 0 is in flight, so one more may wait: the oldest waiting ones (1, then 2) are dropped
    assert [r.step for r in reporter.snapshot()] == [0, 3]
    assert reporter.counts.dropped == 2
    endpoint.gate.set()
    assert reporter.flush(10)
    assert endpoint.keys == ["key-0", "key-3"]
    assert reporter.close() == []


def test_reports_are_logged_under_the_trainers_step_number() -> None:
    """Issue 19.12: logs said the curriculum's draw count, which differs from the step the
    trainer logs (TRL's global_step + 1 at generation, verl's global_steps)."""
    from sweetspot_client.integrations import Selection, TrainerCurriculum

    curriculum = TrainerCurriculum(
        SweetspotConfig(url="http://sweetspot.test", create_run=False), _pool(10), seed=0
    )
    submitted: list[PendingReport] = []
    curriculum.reporter.submit = submitted.append  # type: ignore[method-assign]
    try:
        fields: dict[str, Any] = {
            "step": 3,
            "indices": [1, 2],
            "candidates": [1, 2, 5, 7],
            "key": "sweetspot-job-default-3",
            "model_version": 2,
            "predicted": [0.5, 0.5],
            "fallback": None,
            "updates_behind": 0,
            "select_seconds": 0.01,
        }
        drawn = Selection(**fields)
        assert drawn.log_step == 3
        curriculum.report(drawn, [1, 2], [1.0, 0.0])
        curriculum.report(Selection(**fields, trainer_step=41), [1, 2], [1.0, 0.0])
        curriculum.report(drawn, [1, 2], [1.0, 0.0], trainer_step=57)
        assert [r.step for r in submitted] == [3, 41, 57]
        assert len({r.key for r in submitted}) == 1  # the key never depends on numbering
    finally:
        curriculum.close()
