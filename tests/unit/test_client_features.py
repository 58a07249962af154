"""What the clients send for feature runs, on a ``MockTransport``: the vectors where given,
nothing new where not (so a text run's requests, keys and reports are what they were)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from sweetspot_client import AsyncSweetspotClient, PromptCurriculum, SweetspotClient
from sweetspot_client.curriculum import report_key
from sweetspot_client.reporter import PendingReport

BASE_URL = "http://sweetspot.test"
VECTORS = [[0.5, -1.0], [2.0, 0.25]]
ANSWERS: dict[str, dict[str, Any]] = {
    "/v1/score": {"scores": [0.5, 0.5], "model_version": 0},
    "/v1/select": {"indices": [1], "scores": [0.5], "candidate_scores": [0.5, 0.5]},
    "/v1/update": {"model_version": 1, "loss": 0.0, "mse_before": 0.0, "mae_before": 0.0},
    "/v1/runs": {"name": "f", "model_version": 0, "checkpointed_version": 0},
}


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        answer = dict(ANSWERS[request.url.path])
        if request.url.path == "/v1/select":
            answer["model_version"] = 0
        if request.url.path == "/v1/update":
            answer["num_prompts"] = len(body["prompts"])
        if request.url.path == "/v1/runs":
            answer.update(pending_updates=0, feature_width=body.get("feature_width"))
        return httpx.Response(201 if request.url.path == "/v1/runs" else 200, json=answer)


def calls(client: SweetspotClient, features: object) -> None:
    client.score(["a", "b"], features=features)  # type: ignore[arg-type]
    client.select(["a", "b"], 1, features=features)  # type: ignore[arg-type]
    client.update(["a", "b"], [[1.0], [0.0]], features=features)  # type: ignore[arg-type]


def test_unused_fields_are_left_out_of_every_body() -> None:
    """A service from before feature runs (or warm starts) refuses unknown fields."""
    recorder = Recorder()
    with SweetspotClient(base_url=BASE_URL, transport=httpx.MockTransport(recorder)) as client:
        calls(client, None)
        client.create_run("f")
    assert all("features" not in body for body in recorder.bodies)
    assert recorder.bodies[-1] == {"name": "f"}


@pytest.mark.parametrize(
    "features",
    [VECTORS, tuple(tuple(v) for v in VECTORS), np.array(VECTORS), torch.tensor(VECTORS)],
    ids=["lists", "tuples", "numpy", "torch"],
)
def test_vectors_are_sent_as_plain_numbers_from_lists_arrays_or_tensors(features: object) -> None:
    recorder = Recorder()
    with SweetspotClient(base_url=BASE_URL, transport=httpx.MockTransport(recorder)) as client:
        calls(client, features)
        info = client.create_run("f", feature_width=2)
    assert [body["features"] for body in recorder.bodies[:3]] == [VECTORS] * 3
    assert recorder.bodies[3] == {"name": "f", "feature_width": 2}
    assert info.feature_width == 2


def test_the_async_client_sends_the_same_bodies() -> None:
    sync, async_ = Recorder(), Recorder()
    with SweetspotClient(base_url=BASE_URL, transport=httpx.MockTransport(sync)) as client:
        calls(client, np.array(VECTORS))

    async def main() -> None:
        transport = httpx.MockTransport(async_)
        async with AsyncSweetspotClient(base_url=BASE_URL, transport=transport) as client:
            await client.score(["a", "b"], features=np.array(VECTORS))
            await client.select(["a", "b"], 1, features=np.array(VECTORS))
            await client.update(["a", "b"], [[1.0], [0.0]], features=np.array(VECTORS))

    asyncio.run(main())
    assert async_.bodies == sync.bodies


def test_a_vector_that_is_not_a_row_of_numbers_says_what_to_send() -> None:
    with (
        SweetspotClient(base_url=BASE_URL, transport=httpx.MockTransport(Recorder())) as client,
        pytest.raises(TypeError, match=r"one vector of numbers per prompt \(\[N, W\]\)"),
    ):
        client.score(["a", "b"], features=np.array([0.5, 1.0]))


def test_a_reports_key_covers_its_vectors_and_a_text_reports_key_is_unchanged() -> None:
    text = report_key("step", ["a"], [[1.0]])
    assert text == report_key("step", ["a"], [[1]], None)
    assert (
        text == "step-f516818ad861a252"
    )  # sha256 of {"prompts":["a"],"rewards":[[1.0]]}, as before
    with_vectors = report_key("step", ["a"], [[1.0]], [[0.5, 1.0]])
    assert with_vectors != text
    assert with_vectors != report_key("step", ["a"], [[1.0]], [[0.5, 2.0]])
    report = PendingReport("k", 3, ["a"], [[1.0]], [[0.5, 1.0]])
    assert PendingReport.from_dict(json.loads(json.dumps(report.as_dict()))) == report
    assert "features" not in PendingReport("k", 3, ["a"], [[1.0]]).as_dict()


def test_prompt_curriculum_keeps_the_chosen_vectors_and_reports_them() -> None:
    recorder = Recorder()
    pool = ["a", "b", "c", "d"]
    seen: list[list[str]] = []

    def features(records: list[str]) -> np.ndarray:
        seen.append(records)
        return np.array([[float(ord(r)), 1.0] for r in records])

    with SweetspotClient(base_url=BASE_URL, transport=httpx.MockTransport(recorder)) as client:
        curriculum = PromptCurriculum(client, pool, m=1, k=2, seed=0, features=features)
        batch = curriculum.next_batch()
        select = recorder.bodies[-1]
        assert select["features"] == [[float(ord(r)), 1.0] for r in seen[0]]
        assert batch.features == [select["features"][1]]  # the service kept index 1
        curriculum.report(batch, [[1.0]])
    update = recorder.bodies[-1]
    assert update["features"] == batch.features and update["prompts"] == batch.prompts


def test_a_features_function_must_return_one_vector_per_record() -> None:
    with SweetspotClient(base_url=BASE_URL, transport=httpx.MockTransport(Recorder())) as client:
        curriculum = PromptCurriculum(client, ["a", "b"], m=1, k=2, features=lambda r: [[1.0]])
        with pytest.raises(ValueError, match="returned 1 vectors for 2 records"):
            curriculum.next_batch()
