"""Policy versions in the value model: reports learned in version order within the reorder
window, observations aged by the version gap, scores aimed at the generating version."""

from __future__ import annotations

import asyncio
import json
import math
import random
from typing import Any

import httpx
import pytest
import torch
from pydantic import ValidationError

from sweetspot_client import (
    AsyncSweetspotClient,
    PromptCurriculum,
    ReportVersions,
    SweetspotClient,
)
from sweetspot_client.schema import UpdateRequest
from sweetspot_service.history import PromptHistory, beta_posterior
from sweetspot_service.reorder import ReorderWindow
from sweetspot_service.update_log import generation_versions, learned_rows
from sweetspot_service.value_model import ValueModel, forked_state

WIDTH = 6
SEEDS = [0, 1, 2]


def _shuffled_within(items: list[int], window: int, rng: random.Random) -> list[int]:
    """``items`` (ascending versions) in an order where none arrives ``window`` versions
    after a newer one: sort by version plus a random delay below ``window``."""
    return sorted(items, key=lambda v: v + rng.uniform(0, window - 1))


# The window itself, on a learner whose state is the list of what it learned ------------


def _list_window(window: float, max_pending: int = 64) -> ReorderWindow[list[int], int, int]:
    def learn(state: list[int], batch: int) -> int:
        state.append(batch)
        return len(state)

    return ReorderWindow(learn, list, window=window, max_pending=max_pending)


def _feed(window: ReorderWindow[list[int], int, int], arrivals: list[int]) -> list[int]:
    live: list[int] = []
    newest = -math.inf
    for v in arrivals:
        live, _, _ = window.add(live, newest, (float(v), ""), v)
        newest = max(newest, v)
        window.settle(newest)
    return live


@pytest.mark.parametrize("seed", SEEDS)
def test_any_order_within_the_window_is_learned_as_the_sorted_one(seed: int) -> None:
    rng = random.Random(seed)
    versions = sorted(rng.randrange(40) for _ in range(30))  # repeats: several per version
    arrivals = _shuffled_within(versions, 4, rng)
    assert arrivals != versions
    window = _list_window(4)
    assert _feed(window, arrivals) == versions
    assert window.settled is None or window.settled == versions[: len(window.settled)]


def test_a_report_older_than_the_window_is_learned_in_arrival_order_not_dropped() -> None:
    window = _list_window(2)
    live = _feed(window, [1, 2, 3, 4, 5, 0])
    assert sorted(live) == [0, 1, 2, 3, 4, 5]
    assert live == [1, 2, 3, 0, 4, 5]  # after the settled reports, before the pending ones


def test_no_more_than_max_pending_reports_wait() -> None:
    window = _list_window(100, max_pending=3)
    assert _feed(window, [1, 2, 3, 4, 5]) == [1, 2, 3, 4, 5]
    assert [p.batch for p in window.pending] == [3, 4, 5]
    assert window.settled == [1, 2]


# The value model (a feature run: the ridge fit on given vectors, no backbone) -------------


def _model(window: float = 8.0) -> ValueModel:
    return ValueModel.for_features(WIDTH, replay_half_life=4.0, reorder_window=window)


def _reports(seed: int, count: int = 10) -> list[tuple[list[str], list[float], list[list[float]]]]:
    """``count`` reports of 3 prompts each from a pool of 8 (prompts come back)."""
    rng = random.Random(seed)
    vectors = {f"p{i}": [rng.gauss(0, 1) for _ in range(WIDTH)] for i in range(8)}
    out = []
    for _ in range(count):
        names = rng.sample(sorted(vectors), 3)
        out.append(
            (names, [rng.choice([0.0, 0.25, 0.5, 1.0]) for _ in names], [vectors[n] for n in names])
        )
    return out


def _apply(
    model: ValueModel,
    report: tuple[list[str], list[float], list[list[float]]],
    version: float | None,
) -> None:
    prompts, targets, features = report
    versions = None if version is None else [version] * len(prompts)
    model.update(
        prompts,
        targets,
        counts=[4] * len(prompts),
        features=features,
        versions=versions,
        order=str(version),
    )


def _state(model: ValueModel, seed: int) -> list[tuple[float, ...]]:
    """Every pool prompt's score (posterior, sd, prior, prior sd) from ``_reports(seed)``."""
    rng = random.Random(seed)
    vectors = {f"p{i}": [rng.gauss(0, 1) for _ in range(WIDTH)] for i in range(8)}
    names = sorted(vectors)
    scored, _ = model.score(names, [vectors[n] for n in names])
    return [tuple(s) for s in scored]


@pytest.mark.parametrize("seed", SEEDS)
def test_out_of_order_reports_leave_the_in_order_model(seed: int) -> None:
    reports = _reports(seed)
    in_order, shuffled = _model(), _model()
    for version, report in enumerate(reports):
        _apply(in_order, report, float(version))
    arrivals = _shuffled_within(list(range(len(reports))), 4, random.Random(seed))
    assert arrivals != sorted(arrivals)
    for version in arrivals:
        _apply(shuffled, reports[version], float(version))
    assert _state(shuffled, seed) == _state(in_order, seed)
    assert shuffled.policy_version == in_order.policy_version == len(reports) - 1


@pytest.mark.parametrize("seed", SEEDS)
def test_versions_one_per_report_in_order_are_the_unversioned_model(seed: int) -> None:
    """A synchronous trainer that sends versions gets exactly what it got without them."""
    reports = _reports(seed)
    plain, versioned = _model(), _model()
    for version, report in enumerate(reports, start=1):
        _apply(plain, report, None)
        _apply(versioned, report, float(version))
    assert _state(versioned, seed) == _state(plain, seed)
    assert versioned.policy_version == plain.policy_version == len(reports)


def test_a_late_report_counts_less_the_older_it_is() -> None:
    reports = _reports(0, 4)
    probe = (["late"], [1.0], [[1.0] * WIDTH])
    moved = []
    for version in (3.0, 0.0):  # as new as the newest, and 3 versions (a half-life less 1) old
        model = _model(window=1.0)
        for v, report in enumerate(reports):
            _apply(model, report, float(v))
        before = model.score(["late"], [[1.0] * WIDTH])[0][0].p
        _apply(model, probe, version)
        moved.append(model.score(["late"], [[1.0] * WIDTH])[0][0].p - before)
    assert moved[0] > moved[1] > 0  # applied either way, less when old


@pytest.mark.parametrize("seed", SEEDS)
def test_a_checkpoint_with_pending_reports_continues_identically(seed: int) -> None:
    reports = _reports(seed)
    original = _model()
    for version in range(6):
        _apply(original, reports[version], float(version + 2))
    saved = original.state()
    assert saved["reorder"]["pending"]
    restored = _model()
    restored.load_state(saved)
    for model in (original, restored):
        for version in (1.0, 0.0, 9.0):  # two late reports within the window, one new
            _apply(model, reports[int(version)], version)
    assert _state(restored, seed) == _state(original, seed)
    fork = _model()
    fork.load_state(forked_state(original.state()))
    assert fork.version == 0 and fork.policy_version == 0.0
    assert _state(fork, seed) == _state(original, seed)  # the live state, pending included


# Ageing and aiming --------------------------------------------------------------------


def test_the_posterior_shrinks_to_its_prior_and_widens_as_the_gap_grows() -> None:
    history = PromptHistory(capacity=16, half_life=2.0)
    prior = torch.tensor([0.5], dtype=torch.float64)
    history.observe(
        ["h"], torch.tensor([1.0]), torch.tensor([8.0]), prior, None, torch.tensor([3.0])
    )
    means, sds = [], []
    for at in (3.0, 4.0, 6.0, 12.0, 40.0):
        mean, sd = history.posterior(prior, None, ["h"], pseudo_count=4.0, at=at)
        means.append(float(mean))
        sds.append(float(sd))
    assert means == sorted(means, reverse=True) and means[0] > 0.8
    assert abs(means[-1] - 0.5) < 1e-3
    assert sds == sorted(sds)
    _, flat_sd = beta_posterior(
        prior, torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64), 4.0
    )
    assert abs(sds[-1] - float(flat_sd)) < 1e-3
    earlier, _ = history.posterior(prior, None, ["h"], pseudo_count=4.0, at=1.0)
    assert float(earlier) == means[0]  # never aged by a negative gap


def test_scores_are_aimed_at_the_selection_version_plus_the_observed_lag() -> None:
    history = PromptHistory(capacity=16, half_life=2.0)
    prior = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert history.target(7) == 7.0 and history.target() == 0.0
    generated = torch.tensor([5.0, 6.0], dtype=torch.float64)
    selected = torch.tensor([3.0, 3.0], dtype=torch.float64)
    history.observe(
        ["a", "b"],
        torch.tensor([1.0, 0.0]),
        torch.tensor([4.0, 4.0]),
        prior,
        None,
        generated,
        selected,
    )
    assert history.lag == 2.5
    assert history.target(10) == 12.5
    assert history.target() == 6.0 + 2.5  # without a selection version: the newest one reported


# What the wire takes --------------------------------------------------------------------


def _request(**fields: object) -> UpdateRequest:
    return UpdateRequest(prompts=["a", "b"], rewards=[[1.0], [0.0]], **fields)  # type: ignore[arg-type]


def test_group_fields_override_the_reports_and_a_lone_end_stands_for_both() -> None:
    request = _request(version_start=4, groups=[{"version_end": 6}, {"fate": "stale_dropped"}])
    first, second = request.resolved_groups()
    assert (first.version_start, first.version_end, first.fate) == (4, 6, "trained")
    assert (second.version_start, second.version_end, second.fate) == (4, 4, "stale_dropped")
    assert generation_versions(request.resolved_groups()) == [5.0, 4.0]
    only_end = _request(version_end=3).resolved_groups()
    assert [(g.version_start, g.version_end) for g in only_end] == [(3, 3), (3, 3)]
    assert generation_versions(_request().resolved_groups()) is None
    failed = _request(version_start=1, groups=[None, {"fate": "failed"}])
    assert learned_rows(failed) == [0]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"version_start": 5, "version_end": 4}, "before version_start"),
        ({"groups": [{"version_start": 2, "version_end": 1}, None]}, "before version_start"),
        ({"version_start": 6, "groups": [{"version_end": 5}, None]}, "before version_start"),
        ({"version_start": -1}, "greater than or equal to 0"),
        ({"version_end": 2**41}, "less than or equal to"),
        ({"version_start": "3"}, "valid integer"),
        ({"fate": "lost"}, "'trained', 'stale_dropped', 'filtered' or 'failed'"),
        ({"fate": "failed"}, "nothing in it can be learned from"),
        ({"groups": [{"version_start": 1}, None]}, "some groups carry policy versions"),
        ({"groups": [None]}, "groups has 1 entries but prompts has 2"),
    ],
)
def test_bad_versions_are_refused_saying_what_to_fix(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        _request(**fields)


# The clients ---------------------------------------------------------------------------

LATER = {"policy_version", "version_start", "version_end", "selected_version", "fate", "groups"}


def _recording() -> tuple[list[dict[str, Any]], httpx.MockTransport]:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if request.url.path == "/v1/update":
            answer = {"model_version": 1, "loss": 0.0, "mse_before": 0.0, "mae_before": 0.0}
            return httpx.Response(200, json={**answer, "num_prompts": len(body["prompts"])})
        n = len(body["prompts"])
        scores = [0.5] * n
        return httpx.Response(
            200,
            json={
                "indices": list(range(body.get("m", n))),
                "scores": scores[: body.get("m", n)],
                "candidate_scores": scores,
                "model_version": 0,
                "policy_version": body.get("policy_version"),
                "target_version": 3.0,
            },
        )

    return bodies, httpx.MockTransport(handler)


def test_both_clients_send_versions_only_when_given() -> None:
    versions = ReportVersions(version_start=2, version_end=3, groups=[{"fate": "filtered"}])
    sync_bodies, transport = _recording()
    with SweetspotClient(base_url="http://sweetspot.test", transport=transport) as client:
        client.update(["a"], [[1.0]])
        client.select(["a", "b"], 1)
        client.update(["a"], [[1.0]], versions=versions)
        assert client.select(["a", "b"], 1, policy_version=7).policy_version == 7
    async_bodies, transport = _recording()

    async def main() -> None:
        async with AsyncSweetspotClient(
            base_url="http://sweetspot.test", transport=transport
        ) as client:
            await client.update(["a"], [[1.0]])
            await client.select(["a", "b"], 1)
            await client.update(["a"], [[1.0]], versions=versions)
            await client.select(["a", "b"], 1, policy_version=7)

    asyncio.run(main())
    assert sync_bodies == async_bodies
    plain_update, plain_select, update, select = sync_bodies
    assert not LATER & (plain_update.keys() | plain_select.keys())  # what older services take
    assert (update["version_start"], update["version_end"]) == (2, 3)
    assert update["groups"][0]["fate"] == "filtered"
    assert select["policy_version"] == 7


def test_the_curriculum_passes_the_policy_version_and_keeps_it_on_the_batch() -> None:
    bodies, transport = _recording()
    with SweetspotClient(base_url="http://sweetspot.test", transport=transport) as client:
        curriculum = PromptCurriculum(client, ["a", "b", "c", "d"], m=2, k=2, seed=0)
        batch = curriculum.next_batch(policy_version=5)
        plain = curriculum.next_batch()
    assert bodies[0]["policy_version"] == 5 and "policy_version" not in bodies[1]
    assert (batch.policy_version, plain.policy_version) == (5, None)


def test_curriculum_reports_carry_versions_with_the_batch_as_selected_version() -> None:
    bodies, transport = _recording()
    versions = ReportVersions(version_start=6, groups=[{"fate": "stale_dropped"}, None])
    with SweetspotClient(base_url="http://sweetspot.test", transport=transport) as client:
        curriculum = PromptCurriculum(client, ["a", "b", "c", "d"], m=2, k=2, seed=0)
        batch = curriculum.next_batch(policy_version=5)
        curriculum.report(batch, [[1.0], [0.0]])
        curriculum.report(batch, [[1.0], [0.0]], versions=versions)
        curriculum.report(batch, [[1.0], [0.0]], versions=versions, background=True)
        assert curriculum.flush(30)
        curriculum.close()
    plain, sent, queued = bodies[1:]
    assert not LATER & plain.keys()  # no versions unless given: a synchronous trainer's body
    assert (sent["version_start"], sent["selected_version"]) == (6, 5)
    assert sent["groups"][0]["fate"] == "stale_dropped" and sent["groups"][1] is None
    assert queued == sent  # the background thread sends the same body


def test_versions_are_part_of_a_reports_key_and_of_a_queued_reports_checkpoint() -> None:
    from sweetspot_client.curriculum_step import report_key
    from sweetspot_client.reporter import PendingReport

    versions = ReportVersions(version_start=2, selected_version=1, groups=[{"fate": "filtered"}])
    plain = versions.as_dict()
    assert ReportVersions(**plain).as_dict() == plain
    assert report_key("s", ["a"], [[1.0]]) == report_key("s", ["a"], [[1.0]], None, {})
    assert report_key("s", ["a"], [[1.0]]) != report_key("s", ["a"], [[1.0]], None, plain)
    report = PendingReport("k", 3, ["a"], [[1.0]], None, plain)
    assert PendingReport.from_dict(json.loads(json.dumps(report.as_dict()))) == report


def test_areport_sends_the_same_versions_and_key_as_report() -> None:
    versions = ReportVersions(version_start=4)
    sync_bodies, transport = _recording()
    with SweetspotClient(base_url="http://sweetspot.test", transport=transport) as client:
        curriculum = PromptCurriculum(client, ["a", "b", "c", "d"], m=2, k=2, seed=0)
        curriculum.report(
            curriculum.next_batch(policy_version=3), [[1.0], [0.0]], versions=versions
        )
    async_bodies, transport = _recording()

    async def main() -> None:
        async with AsyncSweetspotClient(
            base_url="http://sweetspot.test", transport=transport
        ) as client:
            curriculum = PromptCurriculum(client, ["a", "b", "c", "d"], m=2, k=2, seed=0)
            batch = await curriculum.anext_batch(policy_version=3)
            await curriculum.areport(batch, [[1.0], [0.0]], versions=versions)

    asyncio.run(main())
    assert sync_bodies == async_bodies and sync_bodies[1]["selected_version"] == 3
