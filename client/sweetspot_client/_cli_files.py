"""The ``sweetspot score`` files: the input table, read with where each row came from, and
the output JSONL with the sidecar that says what it holds.

The output is only ever appended to, and only when it is this command's own: a file
without its sidecar (``scores.jsonl.meta.json``: input path, size and SHA-256, field, run,
service) is refused, never truncated; one whose sidecar names another input, field, run or
service is refused with what differs. A kill can only cut the last line, so that one line is
dropped on resume; any other line that is not a score record means the file is not ours.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT = 1


@dataclass(frozen=True)
class Table:
    """The input's rows, and for each where a user finds it (``line 7``, or ``row 7`` for
    Parquet, which has no lines)."""

    path: Path
    rows: list[dict[str, Any]]
    where: list[str]

    def at(self, i: int) -> str:
        return f"{self.path} {self.where[i]}"


def read_table(path: Path) -> Table:
    """The file's rows as dicts (JSONL, CSV with a header, or Parquet through pyarrow);
    ``ValueError`` naming the file and line of anything that is not a row."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            return _read_jsonl(path)
        if suffix == ".csv":
            return _read_csv(path)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as exc:
            raise ValueError(
                'reading Parquet needs pyarrow: pip install "sweetspot-client[cli]"'
            ) from exc
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return Table(path, rows, [f"row {i}" for i in range(len(rows))])
    raise ValueError(f"{path}: expected a .jsonl, .csv or .parquet file")


def read_rows(path: Path) -> list[dict[str, Any]]:
    return read_table(path).rows


def _read_jsonl(path: Path) -> Table:
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path} line {number}: not valid JSON ({exc.msg} at column {exc.colno})"
                ) from exc
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path} line {number}: expected a JSON object per line (JSONL), "
                    f"got {type(row).__name__}"
                )
            rows.append(row)
            where.append(f"line {number}")
    return Table(path, rows, where)


def _read_csv(path: Path) -> Table:
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        try:
            for row in reader:
                rows.append(row)
                where.append(f"line {reader.line_num}")
        except csv.Error as exc:
            raise ValueError(f"{path} line {reader.line_num}: {exc}") from exc
    return Table(path, rows, where)


@dataclass(frozen=True)
class Provenance:
    """What an output file's scores belong to; written beside it before its first row."""

    input: str
    input_bytes: int
    input_sha256: str
    field: str
    run: str
    service: str
    format: int = FORMAT

    @classmethod
    def of(cls, table: Table, field: str, run: str, service: str) -> Provenance:
        digest = hashlib.sha256()
        with table.path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return cls(
            input=str(table.path.resolve()),
            input_bytes=table.path.stat().st_size,
            input_sha256=digest.hexdigest(),
            field=field,
            run=run,
            service=service,
        )

    def differences(self, other: Provenance) -> list[str]:
        """How ``other`` (this command) differs from ``self`` (what the file holds)."""
        found = []
        if (self.input_sha256, self.input_bytes) != (other.input_sha256, other.input_bytes):
            found.append(
                f"input {self.input} ({self.input_bytes:,} bytes, sha256 "
                f"{self.input_sha256[:12]}), now {other.input} ({other.input_bytes:,} bytes, "
                f"sha256 {other.input_sha256[:12]})"
            )
        for name in ("field", "run", "service"):
            was, now = getattr(self, name), getattr(other, name)
            if was != now:
                found.append(f"{name} {was!r}, now {now!r}")
        return found


def sidecar(output: Path) -> Path:
    return output.with_name(output.name + ".meta.json")


def claim(output: Path, wanted: Provenance) -> None:
    """Make ``output`` this command's: refuse a file it did not write, or one written for
    another input, field, run or service; record ``wanted`` beside a new one."""
    meta = sidecar(output)
    fresh = not output.exists() or output.stat().st_size == 0
    if fresh:
        tmp = meta.with_name(meta.name + ".tmp")
        tmp.write_text(json.dumps(asdict(wanted), indent=1) + "\n")
        os.replace(tmp, meta)
        output.touch()
        return
    redo = f"choose another -o, or remove {output} and {meta.name} to score anew"
    try:
        held = Provenance(**json.loads(meta.read_text()))
    except FileNotFoundError:
        raise ValueError(
            f"{output} exists and was not written by sweetspot score (no {meta.name} beside "
            "it); it is left as it is: choose another -o"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{meta}: not a sweetspot score record ({exc}); {redo}") from exc
    differs = held.differences(wanted)
    if differs:
        raise ValueError(
            f"{output} holds scores of another job, not resumed: {'; '.join(differs)}; {redo}"
        )


def done_rows(output: Path, *, rows: int) -> dict[int, dict[str, Any]]:
    """Rows already scored in ``output``; a last line cut off by a kill is dropped (and the
    file truncated to the complete lines, so appending continues cleanly). Any other line
    that is not a score record of an input of ``rows`` rows: ``ValueError``, file untouched."""
    if not output.exists():
        return {}
    done: dict[int, dict[str, Any]] = {}
    keep = 0
    with output.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # the only line a kill can leave unfinished
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            row = record.get("row") if isinstance(record, dict) else None
            if not isinstance(row, int) or not isinstance(record.get("p"), int | float):
                raise ValueError(
                    f'{output} line {number}: not a score record ({{"row", "p", ...}}); '
                    "it is left as it is: choose another -o"
                )
            if not 0 <= row < rows:
                raise ValueError(
                    f"{output} line {number}: row {row}, but the input has {rows} rows; "
                    "it is left as it is: choose another -o"
                )
            done[row] = record
            keep += len(raw)
    if keep < output.stat().st_size:
        with output.open("rb+") as f:
            f.truncate(keep)
    return done
