"""Helpers shared by the benchmark scripts: where results go and how they are written."""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).parent / "data"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def write_result(name: str, meta: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine and time it was measured on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host_machine": platform.machine(),
        "python": platform.python_version(),
        **meta,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return path
