"""The production service under crashes, overload and fuzzing: the tables of
crash_overload.py and fuzz.py (registered in bench/_render.py).
"""

from __future__ import annotations

from _render import Result, Results, section, table


@section("crash_overload", "service reliability", reads="reliability_crash")
def reliability(crash: Result, results: Results) -> str | None:
    over = results.get("reliability_overload")
    if over is None:
        return None
    c = crash["rows"][0]
    m = over["meta"]
    rows = [
        [
            r["name"],
            f"{r['rate']:.1f}",
            f"{r['goodput']:.1f}",
            f"{r['p50_ms']:.0f}",
            f"{r['p99_ms']:.0f}",
            f"{r['health_p99_ms']:.1f}",
            f"{r['rss_after_mb']:.0f}",
            ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())),
        ]
        for r in over["rows"]
    ]
    bare = results.get("reliability_overload_no_caches")
    memory = ""
    if bare is not None:
        rss = " → ".join(f"{r['rss_after_mb']:.0f}" for r in bare["rows"])
        memory = (
            "RSS grows while the head-mode embedding cache and the score cache fill towards "
            "their bounds (`embedding_cache_size`/`embedding_cache_mb`, 100,000 scores); with "
            f"both off (`--no-caches`) it stays flat: {bare['meta']['rss_before_mb']:.0f} → "
            f"{rss} MB over the same four phases.\n\n"
        )
    return (
        "**Production service under crashes and overload** (`python "
        "bench/reliability/crash_overload.py "
        f"crash --iterations {c['iterations']}` and `… overload`, {crash['meta']['backbone']} "
        "backbone, real redis-server and uvicorn processes).\n\n"
        f"- Crash: {c['service_kills']} SIGKILLs of the service and {c['redis_kills']} of "
        f"redis-server under 3 clients posting updates: {c['acknowledged']} acknowledged, "
        f"{len(c['lost'])} lost, {c['not_applied_or_applied_twice']} applied twice or not at "
        f"all, {c['version_regressions']} version regressions; final model = a once-each replay "
        f"of the log (max score difference {c['max_score_diff_vs_replay']:.1e}); "
        f"{c['seconds']:.0f} s.\n"
        f"- Overload: capacity {m['capacity_rps']:.1f} requests/s of "
        f"{m['prompts_per_request']} fresh prompts (closed loop, 4 clients); open-loop "
        f"arrivals, the load generator on the same 2 cores; RSS {m['rss_before_mb']:.0f} MB "
        "before the first phase.\n\n"
        + memory
        + table(
            [
                "phase",
                "arrivals/s",
                "goodput/s",
                "p50 ms",
                "p99 ms",
                "/healthz p99 ms",
                "RSS after, MB",
                "statuses",
            ],
            rows,
        )
    )


@section("fuzz", "fuzzing depth")
def fuzz(data: Result, results: Results) -> str:
    m = data["meta"]
    rows = [
        [
            r["mode"],
            f"`{r['operation']}`",
            str(r["cases"]),
            ", ".join(f"{code}: {n}" for code, n in r["statuses"].items()),
            str(r["server_errors"]),
            ", ".join(f"{name}: {n}" for name, n in r["failed_checks"].items()) or "–",
        ]
        for r in data["rows"]
    ]
    return (
        "**Fuzzing depth** (`python bench/reliability/fuzz.py --examples "
        f"{m['examples_per_operation']}`): "
        f"schemathesis, all checks, up to {m['examples_per_operation']:,} examples per "
        f"operation in each generation mode, against a key-protected service on Redis "
        f"({m['backbone']} backbone, checkpoints on): {m['cases']:,} cases, "
        f"{m['server_errors']} answered 5xx ({m['server_errors_counted_by_service']} counted "
        f"by the service's metrics), {m['tracebacks_in_service_log']} tracebacks in its log; "
        f"{m['seconds'] / 60:.0f} min. `positive_data_acceptance` counts schema-valid "
        "requests rejected with 4xx by limits JSON Schema cannot state (m above the number "
        "of prompts, configured prompt length, unknown run). A negative-mode case answered "
        "2xx is one that schemathesis's `negative_data_rejection` itself does not count as "
        "invalid (for example only an extra header or query parameter, which HTTP allows, or "
        "a mutation that is valid again once serialised), so no check fails on it. CI runs "
        "the same setup at 50 examples (`tests/reliability/test_fuzz.py`).\n\n"
        + table(
            ["mode", "operation", "cases", "statuses", "5xx", "failed checks"],
            rows,
        )
    )
