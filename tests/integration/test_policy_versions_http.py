"""Policy versions through a real ``sweetspot-serve``, on both stores: out-of-order and
duplicated reports leave the in-order model, stale-dropped groups are learned from, failed
ones are not, versions survive a restart, and bad versions are 422s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sweetspot_client import PromptCurriculum, ReportVersions, Retries, SweetspotClient
from sweetspot_service.testing import RedisServer, ServiceProcess

POOL = [f"What is {i} times {i + 3}?" for i in range(8)]
# Report v: two prompts of the pool, generated at policy version v.
REPORTS = [
    ([POOL[v % 8], POOL[(3 * v + 1) % 8]], [[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    for v in range(6)
]


@pytest.fixture(scope="module", params=["memory", "redis"])
def service(
    request: pytest.FixtureRequest, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One service per store for the module; each test uses runs of its own."""
    folder = tmp_path_factory.mktemp(f"versions-{request.param}")
    args = ["--backbone", str(tiny_llama), "--checkpoint-dir", str(folder / "ckpt")]
    args += ["--reorder-window", "4"]
    redis = None
    if request.param == "redis":
        redis = RedisServer(folder / "redis").start()
        args += ["--redis-url", redis.url]
    process = ServiceProcess(args, folder / "service.log").start()
    process.store = request.param  # type: ignore[attr-defined]
    yield process
    process.kill()
    if redis is not None:
        redis.kill()


def _client(service: ServiceProcess, run: str) -> SweetspotClient:
    return SweetspotClient(
        base_url=service.url, timeout=60, retries=Retries(max_retries=0), run=run
    )


def _report(client: SweetspotClient, v: int, *, stale: bool = False) -> float | None:
    prompts, rewards = REPORTS[v]
    groups = [{"fate": "stale_dropped"} if stale else None, None]
    selected = v - 1 if v else None  # selected one version before it was generated
    versions = ReportVersions(version_start=v, selected_version=selected, groups=groups)
    answer = client.update(prompts, rewards, idempotency_key=f"r{v}", versions=versions)
    return answer.policy_version


def _metric(service: ServiceProcess, series: str) -> float | None:
    """One series' value on the service's /metrics (None when it is absent)."""
    for line in httpx.get(f"{service.url}/metrics", timeout=60).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def _model_state(client: SweetspotClient) -> list[tuple[float, float, float]]:
    scored = client.score(POOL)
    assert scored.uncertainty is not None and scored.prior is not None
    return list(zip(scored.scores, scored.uncertainty, scored.prior, strict=True))


def test_out_of_order_and_duplicated_reports_leave_the_in_order_model(
    service: ServiceProcess,
) -> None:
    with _client(service, "ordered") as ordered, _client(service, "shuffled") as shuffled:
        ordered.create_run("ordered")
        shuffled.create_run("shuffled")
        for v in range(6):
            _report(ordered, v, stale=v == 2)
        reached = [_report(shuffled, v, stale=v == 2) for v in (1, 0, 3, 2, 3, 5, 0, 4)]
        assert reached == [1.0, 1.0, 3.0, 3.0, 3.0, 5.0, 1.0, 5.0]  # duplicates answer as first
        assert _model_state(shuffled) == _model_state(ordered)
        assert shuffled.get_run("shuffled").model_version == 6  # each report once
        stats = shuffled.stats([REPORTS[2][0][0]]).stats[0]  # the stale-dropped group counts
        assert stats.count == ordered.stats([REPORTS[2][0][0]]).stats[0].count > 0
        lag = ordered.select(POOL, 2, policy_version=10)
        assert lag.policy_version == 10 and lag.target_version == 11.0  # selected one behind
        assert _metric(service, 'sweetspot_policy_lag{run="ordered"}') == 1.0
        stale = 'sweetspot_reported_groups_total{fate="stale_dropped",run="ordered"}'
        assert _metric(service, stale) == 1.0


def test_failed_groups_are_logged_but_not_learned_from(service: ServiceProcess) -> None:
    with _client(service, "failing") as client:
        client.create_run("failing")
        before = _model_state(client)
        versions = ReportVersions(version_start=3, groups=[None, {"fate": "failed"}])
        client.update(["learned", "broken"], [[1.0], [0.0]], versions=versions)
        learned, broken = client.stats(["learned", "broken"]).stats
        assert (learned.count, broken.count) == (1, 0)
        assert client.get_run("failing").model_version == 1
        for fate, count in (("failed", 1.0), ("trained", 1.0), ("filtered", None)):
            series = f'sweetspot_reported_groups_total{{fate="{fate}",run="failing"}}'
            assert _metric(service, series) == count, fate
        assert _model_state(client) != before


def test_versions_and_pending_reports_survive_a_restart(service: ServiceProcess) -> None:
    with _client(service, "reference") as reference:
        reference.create_run("reference")
        for v in range(6):
            _report(reference, v)
        expected = _model_state(reference)
    with _client(service, "default") as client:
        for v in (0, 2, 3, 5):  # 1 and 4 come late, after the restart, within the window
            _report(client, v)
    service.stop()  # SIGTERM: checkpointed with its reorder window
    service.start()
    with _client(service, "default") as client:
        assert client.get_run("default").model_version == 4
        if service.store == "redis":  # type: ignore[attr-defined]
            assert _report(client, 3) == 3.0  # answered as before the restart, not applied
            assert client.get_run("default").model_version == 4
        for v in (4, 1):
            _report(client, v)
        assert client.get_run("default").model_version == 6
        assert _model_state(client) == expected


BAD = [
    ("update", {"version_start": 4, "version_end": 3}, "version_end 3 is before version_start 4"),
    ("update", {"version_start": -2}, "greater than or equal to 0"),
    ("update", {"fate": "evicted"}, "'trained', 'stale_dropped', 'filtered' or 'failed'"),
    ("update", {"groups": [{"version_start": 1}, None]}, "some groups carry policy versions"),
    ("select", {"policy_version": -1, "m": 1}, "greater than or equal to 0"),
    ("score", {"policy_version": 1.5}, "valid integer"),
]


def test_bad_versions_are_422s_naming_the_field(service: ServiceProcess) -> None:
    version = httpx.get(f"{service.url}/v1/runs/default", timeout=30).json()["model_version"]
    for path, fields, says in BAD:
        body: dict[str, object] = {"prompts": ["a", "b"], **fields}
        if path == "update":
            body["rewards"] = [[1.0], [0.0]]
        answer = httpx.post(f"{service.url}/v1/{path}", json=body, timeout=30)
        assert answer.status_code == 422, (fields, answer.text)
        assert says in answer.text, (fields, answer.text)
    assert (
        httpx.get(f"{service.url}/v1/runs/default", timeout=30).json()["model_version"] == version
    )


def test_a_curriculums_background_reports_carry_their_versions(service: ServiceProcess) -> None:
    with _client(service, "curriculum") as client:
        client.create_run("curriculum")
        curriculum = PromptCurriculum(client, POOL, m=2, k=2, seed=0)
        for version in range(3):  # each batch generated one version after it was selected
            batch = curriculum.next_batch(policy_version=version)
            versions = ReportVersions(version_start=version + 1)
            curriculum.report(batch, [[1.0, 0.0]] * 2, versions=versions, background=True)
        assert curriculum.flush(120)
        curriculum.close()
        assert client.get_run("curriculum").model_version == 3
    assert _metric(service, 'sweetspot_policy_lag{run="curriculum"}') == 1.0
