"""What a run leaves behind: a progress bar, a per-step table, metrics.jsonl and run.png."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

COLUMNS: list[tuple[str, str, str]] = [
    # (record key, header, format)
    ("step", "step", "{:>4d}"),
    ("predicted_mean", "p̂ sel", "{:>6.3f}"),
    ("reward_mean", "reward", "{:>6.3f}"),
    ("effective_ratio", "eff", "{:>5.2f}"),
    ("value_mae", "V mae", "{:>6.3f}"),
    ("time_select", "sel s", "{:>6.2f}"),
    ("time_prefill", "pre s", "{:>6.2f}"),
    ("time_generate", "gen s", "{:>6.1f}"),
    ("time_update", "upd s", "{:>6.1f}"),
    ("time_sync", "sync s", "{:>6.1f}"),
    ("time_value_wait", "wait s", "{:>6.2f}"),
    ("time_step", "step s", "{:>6.1f}"),
    ("eval_accuracy", "eval", "{:>5.3f}"),
    ("eval_mean_at_n", "mean@N", "{:>6.3f}"),
]


def _cell(record: dict[str, Any], key: str, fmt: str) -> str:
    value = record.get(key)
    width = len(fmt.format(0 if "d" in fmt else 0.0))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    return fmt.format(value)


class RunLog:
    def __init__(self, output_dir: Path, *, total_steps: int, progress: bool = True) -> None:
        self.output_dir = output_dir
        output_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = output_dir / "metrics.jsonl"
        self.metrics_path.write_text("")
        self.records: list[dict[str, Any]] = []
        self._bar = tqdm(total=total_steps, desc="training", unit="step", disable=not progress)
        self._progress = progress
        if progress:
            self._bar.write(self.header())

    @staticmethod
    def header() -> str:
        return "  ".join(h.rjust(len(_cell({}, k, f))) for k, h, f in COLUMNS)

    @staticmethod
    def row(record: dict[str, Any]) -> str:
        return "  ".join(_cell(record, k, f) for k, _, f in COLUMNS)

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._progress:
            self._bar.write(self.row(record))
            self._bar.set_postfix(reward=f"{record['reward_mean']:.3f}")
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()

    def steps(self, total: int) -> Iterator[int]:
        yield from range(1, total + 1)


def plot_run(records: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Four panels: reward vs p̂, effective ratio, value-model error, step time split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    ax = axes[0][0]
    ax.plot(steps, [r["reward_mean"] for r in records], marker="o", label="observed reward")
    if any(r.get("predicted_mean") is not None for r in records):
        ax.plot(steps, [r.get("predicted_mean") for r in records], marker="x", label="predicted p̂")
    evals = [(r["step"], r["eval_accuracy"]) for r in records if r.get("eval_accuracy") is not None]
    if evals:
        ax.plot(*zip(*evals, strict=True), marker="s", label="held-out accuracy")
    ax.set(xlabel="step", ylabel="success rate", title="Selected prompts: reward vs prediction")
    ax.set_ylim(0, 1)
    ax.legend()
    ax = axes[0][1]
    ax.plot(steps, [r["effective_ratio"] for r in records], marker="o", color="tab:green")
    ax.set(
        xlabel="step", ylabel="fraction of groups", title="Effective ratio (reward variance > 0)"
    )
    ax.set_ylim(0, 1.05)
    ax = axes[1][0]
    if any(r.get("value_mae") is not None for r in records):
        ax.plot(steps, [r.get("value_mae") for r in records], marker="o", color="tab:red")
    ax.set(xlabel="step", ylabel="|p̂ − observed mean|", title="Value-model online error (MAE)")
    ax = axes[1][1]
    bottom = [0.0] * len(records)
    for key, label in (
        ("time_select", "selection"),
        ("time_generate", "generation"),
        ("time_update", "policy update"),
        ("time_sync", "weight sync"),
        ("time_value_wait", "waiting for V"),
    ):
        values = [r.get(key, 0.0) for r in records]
        ax.bar(steps, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set(xlabel="step", ylabel="seconds", title="Step wall time")
    ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
