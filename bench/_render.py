"""What the benchmark tables share: the results as a reader, a markdown table, a dash for a
figure that is not there, and the registry of sections by name.

Each folder of ``bench/`` keeps its renderers in its ``tables.py``, beside the scripts that
measure, and registers each under the benchmark's name::

    @section("replay_cost", "replay cost")
    def replay_cost(data: Result, results: Results) -> str:
        ...                     # data: bench/results/replay_cost.json

The registry reads the benchmark's JSON (``reads``, its name unless told) and calls the
renderer with it and the whole folder (for a figure or a second file); while that JSON does
not exist the section is "not measured yet". A table built from several files or a glob
registers with ``reads=None`` and is called with the folder alone, returning None when it has
nothing to show. ``@headline(name)`` registers a benchmark's bullet points for the README;
``bench/report.py`` lists the page's order by name. The tables import only the standard
library (no torch, vLLM or TRL), so rendering needs none of the extras.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
BENCH = Path(__file__).parent
RESULTS = BENCH / "results"
DATA = BENCH / "data"


class Results:
    """The JSON files of one results folder (and of the ground-truth data), read on demand."""

    def __init__(self, folder: Path = RESULTS, data: Path = DATA) -> None:
        self.folder, self.data_folder = folder, data

    def get(self, name: str) -> dict[str, Any] | None:
        """``<folder>/<name>.json``, or None when that benchmark has not been run."""
        return _load(self.folder / f"{name}.json")

    def data(self, name: str) -> dict[str, Any] | None:
        """``bench/data/<name>.json`` (the ground truth's metadata)."""
        return _load(self.data_folder / f"{name}.json")

    def each(self, pattern: str) -> list[dict[str, Any]]:
        """Every result whose file name matches ``pattern`` (one per device), sorted by name."""
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob(pattern))]

    def has(self, file: str) -> bool:
        """Whether ``<folder>/<file>`` exists (a figure, say)."""
        return (self.folder / file).exists()


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


Result = dict[str, Any]
Renderer = Callable[[Results], "str | None"]


@dataclass(frozen=True)
class Section:
    """One benchmark's part of docs/results.md: ``title`` is what "not measured yet" lists;
    an ``archived`` section renders the last results of a retired script."""

    name: str
    title: str
    render: Renderer
    archived: bool = False


_SECTIONS: dict[str, Section] = {}
_DEFAULT = "<name>"


def section(
    name: str, title: str, *, reads: str | None = _DEFAULT, archived: bool = False
) -> Callable[[Callable[..., str | None]], Callable[..., str | None]]:
    """Register the decorated function as the table of benchmark ``name``."""

    def register(table: Callable[..., str | None]) -> Callable[..., str | None]:
        if name in _SECTIONS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        file = name if reads == _DEFAULT else reads

        def render(results: Results) -> str | None:
            if file is None:
                return table(results)
            data = results.get(file)
            return None if data is None else table(data, results)

        _SECTIONS[name] = Section(name, title, render, archived)
        return table

    return register


def get_section(name: str) -> Section:
    """The section registered as ``name``; an unknown name raises and lists the valid ones."""
    return _registered(_SECTIONS, name)


def sections() -> list[Section]:
    """Every registered section, in registration order."""
    return list(_SECTIONS.values())


Headline = Callable[[Results], list[str]]
_HEADLINES: dict[str, Headline] = {}


def headline(name: str) -> Callable[[Headline], Headline]:
    """Register ``lines`` as benchmark ``name``'s bullet points in the README (none while its
    JSON is missing)."""

    def register(lines: Headline) -> Headline:
        _HEADLINES[name] = lines
        return lines

    return register


def get_headline(name: str) -> Headline:
    """The README lines registered as ``name``; an unknown name raises and lists the valid ones."""
    return _registered(_HEADLINES, name)


def _registered(registry: dict[str, T], name: str) -> T:
    if name not in registry:
        raise ValueError(f"unknown benchmark {name!r}; registered: {', '.join(sorted(registry))}")
    return registry[name]


def fmt(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted, or a dash when there is none (None or NaN)."""
    return "–" if value is None or value != value else format(value, spec)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cells(items: list[Result], template: str) -> list[list[str]]:
    """A table's rows from one template of ``format`` fields over each item, its cells split at
    `` | ``: ``cells(rows, "{backbone} | {window:,} | {share:.1%}")``."""
    return [template.format_map(item).split(" | ") for item in items]


def in_ms(items: list[Result], *keys: str) -> list[Result]:
    """The items with each ``key`` (seconds) also as ``<key>_ms``, for ``cells`` templates."""
    return [{**item, **{f"{k}_ms": 1e3 * item[k] for k in keys}} for item in items]


def interval(ci: list[float] | None) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "–"


def command(meta: dict[str, Any], script: str) -> str:
    """The command that reproduces a result: ``script`` with the arguments it recorded (an
    older file recorded the script's path before the move into folders)."""
    recorded = meta["command"].split(" ", 1)
    return " ".join([script, *recorded[1:]])
