"""The value model across task families, during a run and across runs: the tables of
cross_family.py, drift.py and warm_start.py (registered in bench/_render.py).
"""

from __future__ import annotations

import statistics
from typing import Any

from _render import Result, Results, fmt, headline, section, table
from _stats import paired


@section("cross_family", "unseen task families")
def cross_family(data: Result, results: Results) -> str:
    st = data["meta"]["settings"]
    rows = [
        [
            r["backbone"],
            r["left_out"],
            fmt(r["seen_spearman"], ".2f"),
            " / ".join(fmt(r[f"unseen_spearman_{k}"], ".2f") for k in (0, 16, 64)),
            " / ".join(fmt(r[f"unseen_mae_{k}"], ".3f") for k in (0, 16, 64)),
            f"{r['unseen_mean_predicted_0']:.3f} vs {r['unseen_mean_truth_0']:.3f}",
            fmt(r["uncertainty_auroc"], ".2f"),
            fmt(r["novelty_auroc"], ".2f"),
            f"{r['mean_sd_unseen']:.3f} / {r['mean_sd_seen']:.3f}",
        ]
        for r in data["rows"]
    ]
    return (
        "**Unseen task families and uncertainty** (`python bench/value_model/cross_family.py`): "
        "families "
        f"{', '.join(st['families'])} ({st['per_family']} prompts each at most, 32-sample "
        "ground truth from `bench/value_model/ground_truth.py --name`); the default value model "
        "(head "
        "mode, replay ridge, the backbone's default layer) learns online from 75 % of every "
        "family but one, then scores the other 25 % (*seen families*) and the family left "
        "out, before and after 16 and 64 of its prompts are reported; "
        f"{st['splits']} splits each. AUROC: how well the score's sd (or the ridge's novelty) "
        "tells the left-out family's prompts from unseen prompts of seen families (0.5: not "
        "at all).\n\n"
        + table(
            [
                "backbone",
                "left out",
                "Spearman seen",
                "Spearman left-out 0 / 16 / 64",
                "MAE left-out 0 / 16 / 64",
                "mean p̂ vs truth (0)",
                "AUROC sd",
                "AUROC novelty",
                "mean sd left-out / seen",
            ],
            rows,
        )
    )


@section("drift", "value model during a run")
def drift(data: Result, results: Results) -> str:
    st = data["meta"]["settings"]
    rows = [
        [
            r["arm"],
            fmt(r["final_mae"], ".3f"),
            fmt(r["final_spearman"], ".3f"),
            fmt(_mean_from(r, "mae", st["window"]), ".3f"),
            fmt(_mean_from(r, "spearman", st["window"]), ".3f"),
            f"{r['mean_eff']:.2f}",
            f"{r['minutes']:.1f}",
        ]
        for r in data["rows"]
    ]
    return (
        "**The value model during a run** (`python bench/value_model/drift.py`): one "
        "`sweetspot-train` "
        f"PCL run per value model, {st['steps']} steps, m={st['m']}, n={st['n']}, seed "
        f"{st['seed']}, blocking value updates; the error of p̂ at selection on prompts chosen "
        f"for the first time, over the last {st['window']} steps (one run each: a curve, not "
        "a comparison with an interval).\n\n"
        + table(
            [
                "value model",
                "first-seen MAE (last window)",
                "Spearman (last window)",
                "mean MAE (windows from step 8)",
                "mean Spearman (from step 8)",
                "mean eff",
                "minutes (shared machine)",
            ],
            rows,
        )
        + "\n\n![drift](bench/results/drift.png)"
    )


def _mean_from(row: dict[str, Any], key: str, start: int) -> float | None:
    """Mean of a drift curve over the windows ending at step ``start`` or later."""
    values = [
        v for step, v in zip(row["step"], row[key], strict=True) if step >= start and v is not None
    ]
    return statistics.fmean(values) if values else None


@section("warm_start", "warm start")
def warm_start(data: Result, results: Results) -> str:
    st = data["meta"]["settings"]
    rows = [
        [
            r["arm"],
            str(r["seed"]),
            str(r["prompts"]),
            f"{r['mae']:.3f}",
            fmt(r["spearman"]),
            f"{r['first_effective_ratio']:.2f}",
            f"{r['effective_ratio']:.2f}",
        ]
        for r in data["rows"]
    ]
    fork = {r["seed"]: r for r in data["rows"] if r["arm"] == "fork"}
    fresh = {r["seed"]: r for r in data["rows"] if r["arm"] == "fresh"}
    mae = paired({s: r["mae"] for s, r in fork.items()}, {s: r["mae"] for s, r in fresh.items()})
    eff = paired(
        {s: r["effective_ratio"] for s, r in fork.items()},
        {s: r["effective_ratio"] for s, r in fresh.items()},
    )
    verdict = ""
    if mae:
        verdict = (
            f" Fork − fresh over {len(mae)} paired seeds: first-seen MAE "
            f"{statistics.fmean(mae):+.3f}, effective ratio {statistics.fmean(eff):+.2f}"
            + ("" if len(mae) > 2 else " (too few seeds for an interval: not established)")
            + "."
        )
    return (
        "**Warm start** (`python bench/value_model/warm_start.py`): a real `sweetspot-serve`; "
        "job-a trains "
        f"{st['first_steps']} PCL steps; then per seed two {st['steps']}-step jobs from the "
        'same base policy: `fork` reports to a run created with `"from": "job-a"`, '
        "`fresh` to an empty one. First-seen: p̂ at selection against the observed mean, "
        "for prompts new to the run; effective ratio over the first 4 steps and all."
        + verdict
        + "\n\n"
        + table(
            ["arm", "seed", "first-seen prompts", "MAE", "Spearman", "eff (first 4)", "eff (all)"],
            rows,
        )
    )


@headline("cross_family")
def novelty_headline(results: Results) -> list[str]:
    cross = results.get("cross_family")
    if cross is None:
        return []
    aurocs = [r["novelty_auroc"] for r in cross["rows"]]
    return [
        "- **Knows what it does not know**: prompts of a task family it never saw are "
        f"flagged by the score's novelty with AUROC {min(aurocs):.2f}–{max(aurocs):.2f} "
        f"({len(aurocs)} held-out families × backbones)."
    ]


@headline("warm_start")
def warm_start_headline(results: Results) -> list[str]:
    warm = results.get("warm_start")
    by = {a: [r for r in warm["rows"] if r["arm"] == a] for a in ("fork", "fresh")} if warm else {}
    if not (by and by["fork"] and by["fresh"]):
        return []

    def mean(arm: str, key: str) -> float:
        return statistics.fmean(r[key] for r in by[arm] if r[key] is not None)

    return [
        f"- **Warm start**: a new job whose run forks an earlier job's value model "
        f"predicts its first-seen prompts with MAE {mean('fork', 'mae'):.3f} "
        f"(Spearman {mean('fork', 'spearman'):.2f}) against {mean('fresh', 'mae'):.3f} "
        f"({mean('fresh', 'spearman'):.2f}) from an empty one, over its first "
        f"{warm['meta']['settings']['steps']} steps ({len(by['fork'])} paired seeds: "
        "a direction, not established)."
    ]
