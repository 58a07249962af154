"""Schemathesis against the live OpenAPI schema of a production-configured service.

Redis store, checkpoints, and API keys: every generated request (valid and invalid) must
get a documented status with a body that matches the schema, never a 5xx, and without a
key every non-public operation must answer 401.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fuzz import load_schema  # bench/reliability/fuzz.py, on the path through conftest.py
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from sweetspot_service.testing import RedisServer, ServiceProcess

KEY = "fuzz-write-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PUBLIC = {"/healthz", "/readyz", "/metrics"}
EXAMPLES = int(os.environ.get("SWEETSPOT_FUZZ_EXAMPLES", "50"))


@pytest.fixture(scope="module")
def service(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    redis = RedisServer(root / "redis").start()
    args = ["--backbone", str(tiny_llama), "--redis-url", redis.url]
    args += ["--checkpoint-dir", str(root / "ckpt"), "--checkpoint-every", "10"]
    args += ["--max-prompts-per-request", "64", "--max-prompt-chars", "2000"]
    process = ServiceProcess(
        args, root / "service.log", env={"SWEETSPOT_API_KEYS": json.dumps([KEY])}
    )
    yield process.start()
    process.kill()
    redis.kill()


def operations(url: str) -> list[schemathesis.APIOperation]:
    schema = load_schema(url, AUTH)  # 413 counts as rejecting invalid data
    return [result.ok() for result in schema.get_all_operations()]


# Cross-field and configured limits (m <= len(prompts), max prompt length below the schema's
# ceiling, an unknown run name) are not expressible in JSON Schema: a schema-valid request
# may rightly get 4xx, so that one check is left out.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzing_finds_no_server_errors_or_schema_violations(
    service: ServiceProcess, mode: GenerationMode
) -> None:
    ops = operations(service.url)
    assert {op.label for op in ops} >= {"POST /v1/score", "POST /v1/update", "POST /v1/runs"}
    calls: Counter[str] = Counter()
    for op in ops:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            calls[case.operation.label] += 1
            case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Unsatisfiable:  # negative mode: nothing to break in an operation without input
            assert mode == GenerationMode.NEGATIVE and not op.body and not op.path_parameters
    fuzzed = {label for label in calls if " /v1/" in label}
    assert fuzzed == {op.label for op in ops if " /v1/" in op.label}, calls
    metrics = httpx.get(f"{service.url}/metrics").text
    server_errors = [
        line
        for line in metrics.splitlines()
        if line.startswith("sweetspot_http_requests_total")
        and 'status="5' in line
        and 'route="/readyz"' not in line  # 503 while the fixture waited for readiness
    ]
    assert server_errors == []
    assert "Traceback" not in service.log_path.read_text()


def test_auth_is_never_ignored(service: ServiceProcess) -> None:
    for op in operations(service.url):

        @given(case=op.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            for headers in ({}, {"Authorization": "Bearer not-the-key"}, {"Authorization": KEY}):
                response = case.call(headers=headers)
                if case.path in PUBLIC:
                    assert response.status_code == 200
                else:
                    assert response.status_code == 401, (case.path, response.text)

        check()
