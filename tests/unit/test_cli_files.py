"""The ``sweetspot`` CLI's file handling and report, without a service: input formats, the
resumable output after a kill, the difficulty report's arithmetic."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sweetspot_client.cli import done_rows, histogram, read_rows, report, spearman

ROWS = [{"prompt": "What is 1 + 1?", "p": "0.5"}, {"prompt": "Name a colour.", "p": "1.0"}]


def test_jsonl_csv_and_parquet_read_alike(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "a.csv").write_text("prompt,p\nWhat is 1 + 1?,0.5\nName a colour.,1.0\n")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.csv", "a.parquet"):
        assert read_rows(tmp_path / name) == ROWS, name
    with pytest.raises(ValueError, match=r"expected a \.jsonl, \.csv or \.parquet file"):
        read_rows(tmp_path / "a.txt")


def test_a_line_cut_off_by_a_kill_is_dropped_and_the_file_truncated(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    good = '{"row": 0, "p": 0.5}\n{"row": 3, "p": 0.25}\n'
    out.write_text(good + '{"row": 4, "p": 0.')
    assert sorted(done_rows(out)) == [0, 3]
    assert out.read_text() == good  # appending continues on a clean line
    out.write_text(good + '{"row": 5, "p": 0.75}')  # complete JSON, newline never written
    assert sorted(done_rows(out)) == [0, 3] and out.read_text() == good


def test_the_difficulty_report() -> None:
    assert histogram([0.0, 0.05, 0.5, 0.99, 1.0]) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    out = io.StringIO()
    report([0.1, 0.45, 0.5, 0.65, 0.9], 0.5, 0.2, [0.0, 0.6, 0.3, 0.7, 1.0], out)  # Σd² = 2
    text = out.getvalue()
    assert "5 prompts, mean p̂ 0.520" in text
    assert "within ±0.2 of τ=0.5: 60.0 % (3)" in text
    assert "Spearman of p̂ and the known pass rate: 0.900" in text
    assert spearman([1.0, 1.0], [0.0, 1.0]) is None
