"""The benchmark scripts that cannot run at full size here still run end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_gpu_value_model_bench_runs_in_smoke_mode() -> None:
    """The GPU benchmark (built from real architecture configs) on tiny shapes on CPU."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "gpu_value_model.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("tiny-qwen3")]
    assert len(lines) == 2  # one row per prompt length
    assert all(float(ln.split()[3]) > 0 for ln in lines)  # prompts/s measured


def test_readme_results_match_the_committed_json() -> None:
    """The README's Results section is generated; it must be regenerated with the data."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, "README.md is stale: run `python bench/report.py`"
