"""SIGKILL the service (and redis-server) at random moments under update traffic."""

from __future__ import annotations

import os
from pathlib import Path

from crash import crash_trial


def test_no_acknowledged_update_is_lost_or_applied_twice(tiny_llama: Path, tmp_path: Path) -> None:
    iterations = int(os.environ.get("SWEETSPOT_CRASH_ITERATIONS", "6"))
    report = crash_trial(str(tiny_llama), tmp_path, iterations=iterations)
    assert report.service_kills >= 1 and report.redis_kills >= 1
    assert report.acknowledged > 0
    assert report.lost == []
    assert report.wrong_version == []
    assert report.seq_gaps_or_duplicates == 0
    assert report.not_applied_or_applied_twice == 0
    assert report.version_regressions == 0
    assert report.unexpected_statuses == []
    assert report.max_score_diff_vs_replay < 1e-4, report
