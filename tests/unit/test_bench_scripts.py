"""The benchmark scripts that cannot run at full size here still run end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


def test_gpu_value_model_bench_runs_in_smoke_mode() -> None:
    """The GPU benchmark (built from real architecture configs) on tiny shapes on CPU."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "speed" / "gpu_value_model.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("tiny-qwen3")]
    assert len(lines) == 2  # one row per prompt length
    assert all(float(ln.split()[3]) > 0 for ln in lines)  # prompts/s measured


def test_gpu_update_bench_runs_in_smoke_mode() -> None:
    """The GPU value-model cost benchmark drives the real ValueModel in both train modes."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "speed" / "gpu_update.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [ln.split() for ln in result.stdout.splitlines() if ln.startswith("tiny-llama")]
    assert len(rows) == 1
    score_ms, head_ms, full_ms = (float(v) for v in rows[0][1:4])
    assert min(score_ms, head_ms, full_ms) > 0


def test_readme_results_match_the_committed_json() -> None:
    """The README's Results section is generated; it must be regenerated with the data."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        "README.md or docs/results.md is stale: run `python bench/report.py`"
    )


def test_auroc_counts_ties_as_half() -> None:
    sys.path[:0] = [str(BENCH / "value_model"), str(BENCH)]
    from cross_family import auroc

    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.5], [0.5, 0.1]) == pytest.approx(0.75)
    assert auroc([], [0.1]) is None


def test_drift_curves_keep_first_seen_prompts_in_a_sliding_window() -> None:
    sys.path[:0] = [str(BENCH / "value_model"), str(BENCH)]
    from drift import curves

    records = [
        {"step": 1, "prompt_ids": ["a", "b"], "predicted": [0.2, 0.6], "observed": [0.0, 1.0],
         "effective_ratio": 0.5},
        {"step": 2, "prompt_ids": ["a", "c"], "predicted": [0.9, 0.5], "observed": [0.0, 0.5],
         "effective_ratio": 1.0},
        {"step": 3, "prompt_ids": ["d"], "predicted": [0.1], "observed": [0.3],
         "effective_ratio": 0.0},
    ]  # fmt: skip
    out = curves(records, window=2)
    assert out["step"] == [1, 2, 3]
    assert out["mae"][0] == pytest.approx(0.3)  # a, b
    assert out["mae"][1] == pytest.approx(0.2)  # a, b, c ("a" again is not first seen)
    assert out["mae"][2] == pytest.approx(0.1)  # c, d: step 1 left the window
    assert out["spearman"][:2] == [None, 1.0]
