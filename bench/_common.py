"""Helpers shared by the benchmark scripts: where results go and how they are written."""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch

from sweetspot_service import calibration

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


def saved_for_merge(name: str, budget: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``bench/results/<name>.json`` to add runs to, or None when there is none yet.

    Refuses (SystemExit) a file whose ``meta[key]`` is another budget: merged runs must
    compare like with like.
    """
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    if data["meta"][key] != budget:
        raise SystemExit(
            f"{path} holds runs with {key} {data['meta'][key]}, not {budget}: "
            "merge only runs with the same budget (or drop --merge to start afresh)"
        )
    return data


def load_ground_truth(task: str = "chain_sum") -> list[dict[str, Any]]:
    """Rows of bench/data/ground_truth_<task>.jsonl (bench/value_model/ground_truth.py makes
    it)."""
    path = DATA / f"ground_truth_{task}.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python bench/value_model/ground_truth.py` first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def holdout_truth(holdout: int, task_seed: int, task: str = "chain_sum") -> dict[str, Any]:
    """How hard the trainer's held-out prompts are: their ground-truth p (the base policy's
    success rate, bench/value_model/ground_truth.py), for the same task, size, seed and split
    as a run."""
    from sweetspot_trainer.tasks import make_task, split_holdout

    truth = {r["id"]: r["p"] for r in load_ground_truth(task)}
    problems = make_task(task, seed=task_seed, size=len(truth)).problems
    _, held = split_holdout(problems, holdout, seed=task_seed)
    ps = [truth[p.id] for p in held]
    return {
        "prompts": len(ps),
        "mean_p": sum(ps) / len(ps),
        "share_p_at_least_0_1": sum(p >= 0.1 for p in ps) / len(ps),
        "share_p_zero": sum(p == 0 for p in ps) / len(ps),
    }


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation with average ranks for ties; NaN when a side is constant.

    The service's calibration computes it (``sweetspot_service.calibration.spearman``); the
    benchmarks use that one definition.
    """
    value = calibration.spearman(a, b)
    return math.nan if value is None else value


def gemm_peak(
    dtype: torch.dtype,
    *,
    device: torch.device | None = None,
    size: int = 2048,
    repeats: int = 8,
    warmup: int = 1,
) -> float:
    """FLOP/s of a large square matmul: the machine's practical matrix throughput."""
    device = device or torch.device("cpu")
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(warmup):
        a @ b
    sync_device(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync_device(device)
    return repeats * 2 * size**3 / (time.perf_counter() - start)


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters that do matmul work per token (the input embedding is a lookup)."""
    embedding = model.get_input_embeddings().weight.numel()  # type: ignore[operator]
    return sum(p.numel() for p in model.parameters()) - int(embedding)
