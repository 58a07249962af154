"""The ``sweetspot`` CLI's file handling and report, without a service: input formats, the
resumable output after a kill, the difficulty report's arithmetic."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sweetspot_client._cli_files import done_rows, read_rows
from sweetspot_client._cli_report import histogram, report
from sweetspot_client.ranking import spearman

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
    assert sorted(done_rows(out, rows=5)) == [0, 3]
    assert out.read_text() == good  # appending continues on a clean line
    out.write_text(good + '{"row": 5, "p": 0.75}')  # complete JSON, newline never written
    assert sorted(done_rows(out, rows=5)) == [0, 3] and out.read_text() == good


def test_the_difficulty_report() -> None:
    assert histogram([0.0, 0.05, 0.5, 0.99, 1.0]) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    out = io.StringIO()
    report([0.1, 0.45, 0.5, 0.65, 0.9], 0.5, 0.2, [0.0, 0.6, 0.3, 0.7, 1.0], out)  # Σd² = 2
    text = out.getvalue()
    assert "5 prompts, mean p̂ 0.520" in text
    assert "within ±0.2 of τ=0.5: 60.0 % (3)" in text
    assert "Spearman of p̂ and the known pass rate: 0.900" in text
    assert spearman([1.0, 1.0], [0.0, 1.0]) is None


def test_bad_lines_are_named_by_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "a"}\n\n{"prompt": "b"\n')  # line 3 is cut short
    with pytest.raises(ValueError, match=r"data\.jsonl line 3: not valid JSON"):
        read_rows(data)
    data.write_text('{"prompt": "a"}\n["not", "an", "object"]\n')
    with pytest.raises(ValueError, match=r"data\.jsonl line 2: expected a JSON object"):
        read_rows(data)
    data.write_bytes(b'{"prompt": "a"}\n\xff\xfe\n')
    with pytest.raises(ValueError, match=r"data\.jsonl: not UTF-8 text"):
        read_rows(data)


def test_a_file_that_is_not_a_score_record_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    foreign = '{"question": "What is 1 + 1?"}\n{"question": "Name a colour."}\n'
    out.write_text(foreign)
    with pytest.raises(ValueError, match=r"scores\.jsonl line 1: not a score record"):
        done_rows(out, rows=2)
    out.write_text('{"row": 7, "p": 0.5}\n')  # a row this input does not have
    with pytest.raises(ValueError, match=r"line 1: row 7, but the input has 2 rows"):
        done_rows(out, rows=2)
    assert out.read_text() == '{"row": 7, "p": 0.5}\n'
