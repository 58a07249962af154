"""Fuzzing depth as a measured figure: schemathesis against a production-configured service.

    python bench/reliability/fuzz.py                 # 1,000 examples per operation and mode
    python bench/reliability/fuzz.py --examples 20   # end to end in a minute or two

The setup of ``tests/reliability/test_fuzz.py`` (which CI runs at 50 examples): a real
redis-server, ``sweetspot-serve`` with the Redis store, checkpoints and an API key; every
operation of the live OpenAPI schema, in positive (schema-valid) and negative (schema-invalid)
generation modes, each case sent with the key and run through every schemathesis check
(``--checks all``). A failed check is counted, not raised, so every operation gets its full
number of examples; negative mode skips the operations without input. Records per mode and
operation: cases, status codes, 5xx answers and failed checks; and the service's own count
of 5xx (``/metrics``) and tracebacks in its log.

``positive_data_acceptance`` fails whenever a schema-valid request gets a 4xx: the service
rightly rejects some of those (m above the number of prompts, a prompt over the configured
length, an unknown run name), limits that JSON Schema cannot express, so its count is a
figure to read, not a defect; the test leaves that check out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import write_result

from sweetspot_service.testing import RedisServer, ServiceProcess

KEY = "fuzz-write-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODES = {"positive": GenerationMode.POSITIVE, "negative": GenerationMode.NEGATIVE}
# schemathesis's statuses for rejected invalid data, plus 413: a generated body over the
# service's --max-body-bytes (a prompt of a million characters) is rightly refused as too
# large before it is parsed (seen once in CI: an 8.5 MB prompt answered 413).
REJECTION_STATUSES = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]
REJECTION_STATUSES += ["428", "429", "5xx"]


def load_schema(url: str, headers: dict[str, str]) -> Any:
    """The service's OpenAPI schema, with the checks configured as above."""
    checks = {"negative_data_rejection": {"expected-statuses": REJECTION_STATUSES}}
    config = SchemathesisConfig.from_dict({"checks": checks})
    return schemathesis.openapi.from_url(f"{url}/openapi.json", config=config, headers=headers)


def start_service(backbone: str, root: Path) -> tuple[RedisServer, ServiceProcess]:
    """Redis, then a key-protected service on it with checkpoints (the test's settings)."""
    redis = RedisServer(root / "redis").start()
    args = ["--backbone", backbone, "--redis-url", redis.url]
    args += ["--checkpoint-dir", str(root / "ckpt"), "--checkpoint-every", "10"]
    args += ["--max-prompts-per-request", "64", "--max-prompt-chars", "2000"]
    env = {"SWEETSPOT_API_KEYS": json.dumps([KEY])}
    return redis, ServiceProcess(args, root / "service.log", env=env).start()


def fuzz_operation(
    operation: schemathesis.APIOperation, mode: GenerationMode, examples: int
) -> dict[str, Any]:
    """Up to ``examples`` cases of one operation: statuses and failed checks by name."""
    statuses: Counter[str] = Counter()
    failures: Counter[str] = Counter()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=AUTH)
        statuses[str(response.status_code)] += 1
        try:
            case.validate_response(response, headers=AUTH, transport_kwargs={"headers": AUTH})
        except FailureGroup as group:
            failures.update(_check_name(failure) for failure in group.exceptions)
        except Failure as failure:
            failures[_check_name(failure)] += 1

    with contextlib.suppress(Unsatisfiable):  # no invalid case left to make: fewer cases
        check()
    return {
        "cases": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(n for code, n in statuses.items() if code.startswith("5")),
        "failed_checks": dict(sorted(failures.items())),
    }


def _has_input(operation: schemathesis.APIOperation) -> bool:
    return bool(operation.body) or any(True for _ in operation.iter_parameters())


def _check_name(failure: Failure) -> str:
    return ",".join(failure.checks) or type(failure).__name__


def service_server_errors(url: str) -> int:
    """5xx the service itself counted, except /readyz's 503 while it was starting."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if (
            line.startswith("sweetspot_http_requests_total")
            and 'status="5' in line
            and 'route="/readyz"' not in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=1000, help="per operation and mode")
    parser.add_argument("--backbone", default="minilm")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sweetspot-fuzz-") as tmp:
        redis, service = start_service(args.backbone, Path(tmp))
        try:
            schema = load_schema(service.url, AUTH)
            operations = [result.ok() for result in schema.get_all_operations()]
            print(f"{'mode':<9} {'operation':<32} {'cases':>6}  5xx statuses / failed checks")
            for mode_name, mode in MODES.items():
                for operation in operations:
                    if mode == GenerationMode.NEGATIVE and not _has_input(operation):
                        continue  # nothing to make invalid (/healthz, /readyz, /metrics)
                    row = {"mode": mode_name, "operation": operation.label}
                    row |= fuzz_operation(operation, mode, args.examples)
                    print(_line(row), flush=True)
                    rows.append(row)
            counted_by_service = service_server_errors(service.url)
            tracebacks = service.log_path.read_text().count("Traceback")
        finally:
            service.kill()
            redis.kill()
    meta = {
        "examples_per_operation": args.examples,
        "backbone": args.backbone,
        "store": "redis",
        "api_keys": True,
        "checks": "all",
        "cases": sum(r["cases"] for r in rows),
        "server_errors": sum(r["server_errors"] for r in rows),
        "server_errors_counted_by_service": counted_by_service,
        "tracebacks_in_service_log": tracebacks,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"{meta['cases']} cases in {meta['seconds']:.0f} s: {meta['server_errors']} 5xx "
        f"({counted_by_service} counted by the service), {tracebacks} tracebacks in its log"
    )
    print(f"wrote {write_result('fuzz', meta, rows)}")


def _line(row: dict[str, Any]) -> str:
    statuses = " ".join(f"{code}:{n}" for code, n in row["statuses"].items())
    failed = " ".join(f"{name}:{n}" for name, n in row["failed_checks"].items()) or "-"
    return (
        f"{row['mode']:<9} {row['operation']:<32} {row['cases']:>6} cases  "
        f"5xx {row['server_errors']:<3} statuses {statuses}  failed checks {failed}"
    )


if __name__ == "__main__":
    main()
