"""The service over real HTTP: the happy path, learning, selection and metrics."""

from __future__ import annotations

import httpx
import pytest

from sweetspot_client import NotFoundError, PromptCurriculum, SweetspotClient, select_nearest
from sweetspot_trainer.train import ensure_run

EASY = [f"What is {a} + {b}?" for a in range(1, 9) for b in range(1, 4)]
HARD = [
    f"Prove that the {a}th Fermat number with base {b} is composite."
    for a in range(8)
    for b in range(3)
]


def test_health_and_readiness(client: SweetspotClient, service_url: str) -> None:
    health = client.health()
    assert health.ready and health.status == "ok" and health.backbone == "minilm"
    assert httpx.get(f"{service_url}/healthz").json() == {"status": "alive"}


def test_score_is_aligned_with_the_prompts(client: SweetspotClient) -> None:
    one_by_one = [client.score([p]).scores[0] for p in EASY[:3] + HARD[:3]]
    together = client.score(EASY[:3] + HARD[:3])
    assert together.scores == pytest.approx(one_by_one, abs=1e-5)


def test_updates_teach_the_value_model(client: SweetspotClient) -> None:
    prompts = EASY + HARD
    rewards = [[1.0, 1.0, 1.0, 0.0]] * len(EASY) + [[0.0, 0.0, 0.0, 0.0]] * len(HARD)
    start = client.score(prompts).model_version
    first = client.update(prompts, rewards, steps=4)
    assert first.model_version == start + 1 and first.num_prompts == len(prompts)
    for _ in range(15):
        last = client.update(prompts, rewards, steps=4)
    assert last.model_version == start + 16
    assert last.mae_before < 0.5 * first.mae_before
    scores = client.score(prompts).scores
    assert min(scores[: len(EASY)]) > max(scores[len(EASY) :])


def test_select_keeps_the_candidates_nearest_tau(client: SweetspotClient) -> None:
    prompts = EASY[:6] + HARD[:6]
    scored = client.score(prompts)
    chosen = client.select(prompts, m=4, tau=0.3, seed=7)
    assert chosen.candidate_scores == pytest.approx(scored.scores, abs=1e-5)
    assert chosen.scores == pytest.approx([scored.scores[i] for i in chosen.indices], abs=1e-5)
    distance = [abs(s - 0.3) for s in scored.scores]
    assert (
        max(distance[i] for i in chosen.indices)
        <= min(d for i, d in enumerate(distance) if i not in chosen.indices) + 1e-6
    )
    assert chosen.indices == client.select(prompts, m=4, tau=0.3, seed=7).indices


def test_selection_rule_matches_the_client_copy(client: SweetspotClient) -> None:
    import random

    prompts = EASY[:10]
    answer = client.select(prompts, m=3, tau=0.5, seed=11)
    local = select_nearest(answer.candidate_scores, 3, 0.5, rng=random.Random(11))
    assert answer.indices == local


def test_prompt_curriculum_round_trip(client: SweetspotClient) -> None:
    pool = [{"question": p, "id": i} for i, p in enumerate(EASY + HARD)]
    curriculum = PromptCurriculum(client, pool, m=3, k=4, prompt_key="question", seed=1)
    batch = curriculum.next_batch()
    assert len(batch.items) == 3 and len(batch.predicted) == 3
    assert all(item["question"] in batch.prompts for item in batch.items)
    answer = curriculum.report(batch, [[1.0, 0.0]] * 3)
    assert answer.model_version == batch.model_version + 1


def test_metrics_expose_the_dashboards_series(client: SweetspotClient, service_url: str) -> None:
    client.update(EASY[:2], [[1.0], [0.0]])
    text = httpx.get(f"{service_url}/metrics").text
    for name in (
        "sweetspot_http_requests_total",
        "sweetspot_http_request_duration_seconds_bucket",
        "sweetspot_batch_prompts_bucket",
        "sweetspot_prompts_scored_total",
        "sweetspot_updates_total",
        "sweetspot_update_loss",
        "sweetspot_prediction_abs_error_bucket",
        "sweetspot_model_version",
        "sweetspot_model_ready 1.0",
    ):
        assert name in text, name
    assert 'route="/v1/update"' in text


def test_trainer_creates_its_run_once_and_resumes_it(service_url: str) -> None:
    with SweetspotClient(base_url=service_url, run="job-7") as job:
        with pytest.raises(NotFoundError, match="POST /v1/runs"):
            job.score(EASY[:1])
        ensure_run(job, "job-7")
        job.update(EASY[:1], [[1.0]])
        ensure_run(job, "job-7")  # a restarted job: the run and its model are kept
        assert job.get_run("job-7").model_version == 1
        assert job.score(EASY[:1]).run == "job-7"
        job.delete_run("job-7")


def test_head_probes_answer_200(service_url: str) -> None:
    """Load balancers probe /healthz and /readyz with HEAD; /metrics answered 405 (19.13)."""
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.head(f"{service_url}{path}").status_code == 200, path


def test_deleted_runs_leave_no_trace_in_metrics_or_error_bodies(
    client: SweetspotClient, service_url: str
) -> None:
    client.create_run("private-run")
    update = {"prompts": ["What is 1 + 1?"], "rewards": [[1.0]], "run": "private-run"}
    assert httpx.post(f"{service_url}/v1/update", json=update, timeout=60).status_code == 200
    assert 'run="private-run"' in httpx.get(f"{service_url}/metrics").text
    missing = httpx.post(f"{service_url}/v1/score", json={"prompts": ["x"], "run": "nope"})
    assert missing.status_code == 404 and "private-run" not in missing.text
    client.delete_run("private-run")
    assert 'run="private-run"' not in httpx.get(f"{service_url}/metrics").text


def test_scores_carry_prior_uncertainty_and_history_through_http(service_url: str) -> None:
    """The posterior blends a prompt's own rewards; posterior=false and /v1/stats show the
    text-only prior; the uncertainty narrows with the prompt's own observations."""
    with SweetspotClient(base_url=service_url, run="posterior-http") as job:
        ensure_run(job, "posterior-http")
        seen, fresh = "What is 91 + 7?", "What is 17 + 70?"
        job.update(EASY[:8], [[1.0, 0.0]] * 8)  # a fitted prior first
        before = job.score([seen, fresh])
        for _ in range(3):
            job.update([seen], [[0.0] * 8])
        after = job.score([seen, fresh])
        text_only = job.score([seen], posterior=False)
        assert after.uncertainty is not None and before.uncertainty is not None
        assert after.uncertainty[0] < before.uncertainty[0]
        assert after.prior is not None and text_only.scores == pytest.approx(after.prior[:1])
        assert after.scores[0] < after.prior[0]  # 0 of 24 pulls it down
        stats = job.stats([seen]).stats[0]
        assert stats.count == 24 and stats.posterior == pytest.approx(after.scores[0])
        assert stats.prior == pytest.approx(after.prior[0]) and stats.uncertainty is not None
        chosen = job.select([seen, fresh, *EASY[:4]], m=2, rule="signal", group_size=4)
        assert chosen.candidate_uncertainty is not None and len(chosen.indices) == 2
        with pytest.raises(Exception, match="group_size"):
            job.select([seen], m=1, rule="signal", group_size=0)
