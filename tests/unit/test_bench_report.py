"""The benchmark tables' registry (bench/_render.py) and the real-problems table, on
synthetic results in a temporary folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
import report  # registers every folder's tables
from _render import Results, get_headline, get_section


def _row(method: str, within: float) -> dict[str, Any]:
    return {"method": method, "folds": 2, "spearman_within": within, "spearman_within_sd": 0.01,
            "spearman_gsm8k-test": within - 0.1, "spearman_math-test-level5": within + 0.1,
            "spearman_mixed": float("nan"), "mae": 0.15, "brier": 0.16}  # fmt: skip


def _results(tmp_path: Path, rows: object) -> Results:
    meta = {"data": "bench/data/x.jsonl", "problems": 1534, "default": "minilm@4",
            "protocol": {"folds": 2, "held_out": 300, "batch": 32, "n": 4, "rollout_seeds": 16},
            "feature_check_max_abs_diff": {"minilm@4": 7e-07}}  # fmt: skip
    (tmp_path / "real_problems.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    return Results(tmp_path, tmp_path)


def test_an_unknown_benchmark_name_raises_and_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown benchmark 'accuracy'.*prediction_accuracy"):
        get_section("accuracy")
    with pytest.raises(ValueError, match=r"registered: .*trl_overhead"):
        get_headline("trl")


def test_every_registered_section_stands_on_the_page() -> None:
    report.check_page()
    assert len(report.PAGE) == len(set(report.PAGE))


def test_real_problems_renders_the_parts_present_and_skips_the_others(tmp_path: Path) -> None:
    section = get_section("real_problems")
    main = [_row("V minilm@4", 0.36), _row("rollouts_k1", 0.46)]
    text = section.render(_results(tmp_path, {"main": main}))
    assert text is not None
    assert "| V minilm@4 | 0.360 ± 0.010 | 0.260 | 0.460 | – | 0.150 | 0.160 |" in text
    assert "`main`:" in text and "`revisit`:" not in text and "`leave_out`:" not in text

    leave_out = [{"method": "V minilm@4", "seen": "gsm8k-test", "unseen": "math-test-level5",
                  "spearman": 0.2, "mae": 0.3, "mean_predicted": 0.6, "mean_truth": 0.25,
                  "uncertainty_auroc": 0.71}]  # fmt: skip
    text = section.render(_results(tmp_path, {"curve": main, "leave_out": leave_out}))
    assert text is not None and "`main`:" not in text and "`curve`:" in text
    assert (
        "| minilm@4 | gsm8k-test → math-test-level5 | 0.200 | 0.300 | 0.600 vs 0.250 | 0.71 |"
        in (text)
    )


def test_real_problems_is_not_measured_without_its_json_or_its_parts(tmp_path: Path) -> None:
    section = get_section("real_problems")
    assert section.render(Results(tmp_path, tmp_path)) is None
    assert section.render(_results(tmp_path, {})) is None
    assert "real problems" in report.render(Results(tmp_path, tmp_path))  # "not measured yet"
