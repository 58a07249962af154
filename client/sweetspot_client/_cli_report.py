"""The ``sweetspot`` CLI's difficulty report and its two plots (matplotlib, when asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from sweetspot_client.ranking import spearman
from sweetspot_client.schema import CalibrationResponse

BINS = 10
BAR = 40


def histogram(values: list[float]) -> list[int]:
    counts = [0] * BINS
    for v in values:
        counts[min(BINS - 1, max(0, int(v * BINS)))] += 1
    return counts


def report(p: list[float], tau: float, band: float, truth: list[float] | None, out: TextIO) -> None:
    """The difficulty report: how p̂ spreads, how much sits near τ, how it ranks a truth."""
    counts = histogram(p)
    peak = max(counts) or 1
    within = sum(abs(v - tau) <= band for v in p)
    near = within / len(p) if p else 0.0
    print(f"{len(p)} prompts, mean p̂ {sum(p) / max(len(p), 1):.3f}", file=out)
    for i, c in enumerate(counts):
        bar = "█" * round(BAR * c / peak)
        print(f"  p̂ {i / BINS:.1f}–{(i + 1) / BINS:.1f} {c:>7}  {bar}", file=out)
    print(
        f"within ±{band:g} of τ={tau:g}: {100 * near:.1f} % ({within})",
        file=out,
    )
    if truth is not None:
        rho = spearman(p, truth)
        shown = "undefined (a constant side)" if rho is None else f"{rho:.3f}"
        print(f"Spearman of p̂ and the known pass rate: {shown}", file=out)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ValueError('--plot needs matplotlib: pip install "sweetspot-client[cli]"') from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_histogram(p: list[float], tau: float, band: float, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    ax.hist(p, bins=[i / BINS for i in range(BINS + 1)], color="tab:blue", edgecolor="white")
    ax.axvspan(tau - band, tau + band, color="tab:green", alpha=0.15, label=f"τ ± {band:g}")
    ax.set(xlabel="p̂ (predicted success rate)", ylabel="prompts", title="Dataset difficulty")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(c: CalibrationResponse, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), constrained_layout=True)
    filled = [b for b in c.bins if b.prompts]
    ax.plot([0, 1], [0, 1], ":", color="gray", label="perfect")
    ax.plot(
        [b.mean_predicted for b in filled],
        [b.mean_observed for b in filled],
        marker="o",
        label=f"run {c.run}",
    )
    ax.set(xlabel="mean p̂", ylabel="mean observed reward", title="Reliability", xlim=(0, 1))
    ax.set_ylim(0, 1)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
