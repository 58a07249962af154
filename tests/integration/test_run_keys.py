"""Keys bound to runs (issue 31, finding 6): two teams on one real sweetspot-serve, each key
confined to its own runs on every route that names a run, a read-only team key, an
unbound admin key, and /metrics closed to run keys (its series name every run)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sweetspot_service.testing import ServiceProcess

ADMIN, METRICS = "admin-key-0123456789", "metrics-key-0123456789"
TEAM_A, TEAM_B, A_READ = "team-a-key-0123456789", "team-b-key-0123456789", "a-read-0123456789"
PROMPTS = ["What is 1 + 1?", "What is 2 + 3?"]


@pytest.fixture(scope="module")
def teams(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("run-keys") / "service.log"
    run_keys = [
        {"key": TEAM_A, "runs": ["team-a-*"]},
        {"key": TEAM_B, "runs": ["team-b-*", "shared"]},
        {"key": A_READ, "runs": ["team-a-*"], "access": "read"},
    ]
    env = {
        "SWEETSPOT_API_KEYS": json.dumps([ADMIN]),
        "SWEETSPOT_METRICS_API_KEYS": json.dumps([METRICS]),
        "SWEETSPOT_RUN_KEYS": json.dumps(run_keys),
    }
    process = ServiceProcess(["--backbone", str(tiny_llama)], log, env=env).start()
    for key, run in ((TEAM_A, "team-a-1"), (TEAM_B, "team-b-1")):
        assert call(process.url, "POST", "/v1/runs", key, {"name": run}).status_code == 201
    yield process.url
    process.kill()


def call(
    url: str, method: str, path: str, key: str, body: object = None, content: bytes | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if content is not None:
        return httpx.request(method, f"{url}{path}", content=content, headers=headers, timeout=60)
    return httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=60)


def routes(run: str) -> list[tuple[str, str, object]]:
    """Every route that reads or changes one run, as (method, path, body)."""
    return [
        ("POST", "/v1/score", {"prompts": PROMPTS, "run": run}),
        ("POST", "/v1/select", {"prompts": PROMPTS, "m": 1, "run": run}),
        ("POST", "/v1/stats", {"prompts": PROMPTS, "run": run}),
        ("POST", "/v1/update", {"prompts": PROMPTS[:1], "rewards": [[1.0, 0.0]], "run": run}),
        ("GET", f"/v1/runs/{run}", None),
        ("GET", f"/v1/runs/{run}/calibration", None),
        ("GET", f"/v1/runs/{run}/export", None),
    ]


@pytest.mark.parametrize("index", range(7), ids=[r[1] for r in routes("x")])
def test_a_team_key_uses_its_own_run_and_no_other(teams: str, index: int) -> None:
    method, path, body = routes("team-a-1")[index]
    assert call(teams, method, path, TEAM_A, body).status_code == 200
    refused = call(teams, method, path, TEAM_B, body)
    assert refused.status_code == 403, refused.text
    detail = refused.json()["detail"]
    assert "'team-a-1'" in detail and "team-b-*" in detail
    assert call(teams, method, path, ADMIN, body).status_code == 200


def test_another_teams_missing_run_is_refused_not_revealed(teams: str) -> None:
    for run in ("team-a-1", "team-a-no-such-run"):
        answer = call(teams, "POST", "/v1/score", TEAM_B, {"prompts": PROMPTS, "run": run})
        assert answer.status_code == 403, answer.text
    answer = call(teams, "POST", "/v1/score", TEAM_A, {"prompts": PROMPTS, "run": "team-a-none"})
    assert answer.status_code == 404


def test_create_delete_and_import_only_inside_the_keys_runs(teams: str) -> None:
    assert call(teams, "POST", "/v1/runs", TEAM_B, {"name": "team-a-2"}).status_code == 403
    assert call(teams, "POST", "/v1/runs", TEAM_B, {"name": "shared"}).status_code == 201
    assert call(teams, "DELETE", "/v1/runs/team-a-1", TEAM_B).status_code == 403
    assert call(teams, "DELETE", "/v1/runs/shared", TEAM_A).status_code == 403
    assert call(teams, "DELETE", "/v1/runs/shared", TEAM_B).status_code == 204
    exported = call(teams, "GET", "/v1/runs/team-b-1/export", TEAM_B).content
    put = "/v1/runs/{}/import"
    assert call(teams, "PUT", put.format("team-a-3"), TEAM_B, content=exported).status_code == 403
    assert call(teams, "PUT", put.format("team-b-3"), TEAM_B, content=exported).status_code == 201
    assert call(teams, "GET", "/v1/runs/team-a-1", TEAM_A).json()["model_version"] >= 0


def test_a_fork_needs_both_source_and_destination(teams: str) -> None:
    fork = {"name": "team-b-fork", "from": "team-a-1"}
    assert call(teams, "POST", "/v1/runs", TEAM_B, fork).status_code == 403  # A's source
    fork = {"name": "team-a-fork", "from": "team-b-1"}
    assert call(teams, "POST", "/v1/runs", TEAM_B, fork).status_code == 403  # A's destination
    fork = {"name": "team-b-fork", "from": "team-b-1"}
    assert call(teams, "POST", "/v1/runs", TEAM_B, fork).status_code == 201


def test_a_key_lists_only_its_runs(teams: str) -> None:
    names = {r["name"] for r in call(teams, "GET", "/v1/runs", TEAM_A).json()["runs"]}
    assert names and all(n.startswith("team-a-") for n in names)
    everyone = {r["name"] for r in call(teams, "GET", "/v1/runs", ADMIN).json()["runs"]}
    assert {"default", "team-a-1", "team-b-1"} <= everyone


def test_a_read_team_key_reads_its_runs_only(teams: str) -> None:
    score = {"prompts": PROMPTS, "run": "team-a-1"}
    assert call(teams, "POST", "/v1/score", A_READ, score).status_code == 200
    update = {"prompts": PROMPTS[:1], "rewards": [[1.0]], "run": "team-a-1"}
    answer = call(teams, "POST", "/v1/update", A_READ, update)
    assert answer.status_code == 403 and "only read" in answer.json()["detail"]
    other = call(teams, "POST", "/v1/score", A_READ, {"prompts": PROMPTS, "run": "team-b-1"})
    assert other.status_code == 403


def test_run_keys_may_not_read_metrics(teams: str) -> None:
    assert call(teams, "GET", "/metrics", METRICS).status_code == 200
    answer = call(teams, "GET", "/metrics", TEAM_A)
    assert answer.status_code == 403 and "every run" in answer.json()["detail"]
