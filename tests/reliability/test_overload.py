"""Open-loop load at 2x measured capacity: only 200s and 429s, health answers, memory flat."""

from __future__ import annotations

from pathlib import Path

from reliability import overload_trial


def test_twice_capacity_gets_only_200_and_429(tmp_path: Path) -> None:
    report = overload_trial("minilm", tmp_path, seconds=3.0)
    assert report.capacity_rps > 0
    _baseline, overload, _after, _again = report.phases
    assert report.only_200_and_429, [p.statuses for p in report.phases]
    assert overload.statuses.get("429", 0) > 0  # admission control shed the excess
    assert overload.statuses.get("200", 0) > 0  # ... while still serving
    assert all(p.health_failures == 0 for p in report.phases)
    # Memory: a bounded queue holds at most max_queued requests; no growth with overload.
    assert report.rss_after_mb < report.rss_before_mb * 1.25 + 50
