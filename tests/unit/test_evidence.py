"""The placebo-controlled learning benchmark's statistics (bench/learning/evidence.py,
bench/_stats.py) against hand-computed values, on synthetic runs."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
sys.path.insert(0, str(Path(__file__).parents[2] / "bench" / "learning"))
from _stats import (
    bootstrap_ci95,
    iqm,
    minimum_detectable,
    pairs_needed,
    probability_of_improvement,
)
from evidence_analysis import MIN_PAIRS, at_seconds, compare, curves, passes, summarise


def _run(arm: str, seed: int, final: float, per_problem: list[float]) -> dict[str, object]:
    return {
        "regime": "cold",
        "arm": arm,
        "seed": seed,
        "final_mean_at_n": final,
        "per_problem": per_problem,
        "final_greedy": None,
        "mean_effective_ratio": 0.5,
        "train_seconds": 60.0,
        "wall_seconds": 90.0,
        "passes": 0.2,
        "rollouts": 768,
        "pool": 1792,
        "mean_at_n_curve": [(12, final / 2), (24, final)],
    }


def test_iqm_drops_a_quarter_from_each_end() -> None:
    assert iqm([1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.5)
    assert iqm([5.0]) == 5.0 and iqm([]) is None


def test_probability_of_improvement_counts_ties_as_half() -> None:
    assert probability_of_improvement([2.0, 1.0], [1.0]) == pytest.approx(0.75)
    assert probability_of_improvement([0.0], [1.0]) == 0.0


def test_power_and_bootstrap() -> None:
    diffs = [0.01, 0.03, -0.01, 0.02, 0.00]
    sd = statistics.stdev(diffs)
    assert minimum_detectable(diffs) == pytest.approx((2.776 + 0.941) * sd / 5**0.5)
    assert minimum_detectable([0.1]) is None
    # Student's t up to 16 pairs: the smallest n whose detectable difference is ≤ the effect.
    needed = pairs_needed(diffs, 0.02)
    t = {7: 2.447 + 0.906, 8: 2.365 + 0.896}
    assert needed == 8 and t[8] * sd / 8**0.5 <= 0.02 < t[7] * sd / 7**0.5
    # Beyond 16 pairs, the normal approximation.
    assert pairs_needed(diffs, 0.005) == round(((1.96 + 0.8416) * sd / 0.005) ** 2 + 0.5)
    assert pairs_needed(diffs, 0.0) is None and pairs_needed([0.1], 0.1) is None
    low, high = bootstrap_ci95(diffs) or (0.0, 0.0)
    assert min(diffs) <= low < statistics.fmean(diffs) < high <= max(diffs)


def test_an_arm_is_compared_with_the_placebo_on_paired_seeds_only() -> None:
    runs = [
        _run("random", 0, 0.10, [0.0, 0.25]),
        _run("random", 1, 0.20, [0.25, 0.25]),
        _run("pcl", 0, 0.15, [0.25, 0.25]),
        _run("pcl", 1, 0.30, [0.5, 0.25]),
        _run("pcl", 2, 0.90, [1.0, 1.0]),  # no placebo run for seed 2: not in the pair
    ]
    row = compare(runs, "cold", "pcl", "random")
    assert row is not None and row["seeds"] == 2
    assert row["mean_diff"] == pytest.approx(0.075)  # (0.05 + 0.10) / 2
    half = 12.706 * statistics.stdev([0.05, 0.10]) / 2**0.5
    assert row["ci95"] == pytest.approx((0.075 - half, 0.075 + half))
    assert not row["established"]  # two seeds: the interval spans zero
    assert row["per_problem_diff"] == pytest.approx(((0.25 + 0.25) / 2 + 0.0) / 2)
    arms, comparisons = summarise(runs)
    assert [a["arm"] for a in arms] == ["pcl", "random"]
    assert [(c["arm"], c["reference"]) for c in comparisons] == [("pcl", "random")]
    with_peers = [*runs, _run("dps", 0, 0.1, [0.0, 0.0]), _run("uniform", 0, 0.1, [0.0, 0.0])]
    _, comparisons = summarise(with_peers)
    assert {(c["arm"], c["reference"]) for c in comparisons} == {
        ("pcl", "random"),
        ("pcl", "uniform"),
        ("pcl", "dps"),
        ("dps", "random"),
        ("dps", "uniform"),
        ("random", "uniform"),
    }


def test_the_report_says_not_established_where_the_interval_spans_zero(tmp_path: Path) -> None:
    import json

    import learning.tables  # noqa: F401  (registers the evidence section)
    from _render import Results, get_section

    runs = [
        _run("random", 0, 0.10, [0.0, 0.25]),
        _run("random", 1, 0.20, [0.25, 0.25]),
        _run("pcl", 0, 0.15, [0.25, 0.25]),
        _run("pcl", 1, 0.30, [0.5, 0.25]),
        _run("uniform", 0, 0.05, [0.0, 0.0]),
        _run("uniform", 1, 0.06, [0.0, 0.25]),
    ]
    arms, comparisons = summarise(runs)
    budget = {"steps": 24, "m": 4, "n": 8, "k": 4, "holdout": 2, "eval_samples": 4}
    meta = {"budget": budget, "runs": runs, "comparisons": comparisons}
    (tmp_path / "evidence.json").write_text(json.dumps({"meta": meta, "rows": arms}))
    text = get_section("evidence").render(Results(tmp_path))
    assert text is not None
    assert "cold, pcl against random over 2 seeds: not established: +0.075" in text
    assert "| cold | pcl − uniform | 2 | +0.170 |" in text  # (0.10 + 0.24) / 2


def test_no_claim_below_the_minimum_pairs_even_when_the_interval_excludes_zero() -> None:
    few = [_run("random", s, 0.10 + s / 100, [0.0]) for s in range(MIN_PAIRS - 1)]
    few += [_run("pcl", s, 0.20 + s / 100 + (s % 2) / 1000, [0.0]) for s in range(MIN_PAIRS - 1)]
    row = compare(few, "cold", "pcl", "random")
    assert row is not None and row["ci95"] is not None and row["ci95"][0] > 0
    assert not row["established"]
    more = [*few, _run("random", MIN_PAIRS, 0.1, [0.0]), _run("pcl", MIN_PAIRS, 0.2, [0.0])]
    row = compare(more, "cold", "pcl", "random")
    assert row is not None and row["seeds"] == MIN_PAIRS and row["established"]


def test_curves_start_at_the_shared_baseline_and_band_over_seeds() -> None:
    runs = [_run("pcl", 0, 0.2, [0.0]), _run("pcl", 1, 0.4, [0.0]), _run("random", 0, 0.1, [0])]
    baselines = [{"regime": "cold", "seed": s, "mean_at_n": 0.05 + s / 100} for s in (0, 1)]
    by_arm = {c["arm"]: c for c in curves(runs, baselines)}
    pcl = by_arm["pcl"]
    assert pcl["steps"] == [0, 12, 24] and pcl["seeds"] == [2, 2, 2]
    assert pcl["mean"] == pytest.approx([0.055, 0.15, 0.3])
    half = 12.706 * statistics.stdev([0.2, 0.4]) / 2**0.5
    assert pcl["band"][2] == pytest.approx((0.3 - half, 0.3 + half))
    assert by_arm["random"]["band"][1] is None  # one seed: no interval


def test_the_readme_headline_puts_pcl_against_each_control_and_withholds_weak_claims() -> None:
    import learning.tables as report

    seeds = range(MIN_PAIRS)
    runs = [_run("random", s, 0.10 + s / 100, [0.0]) for s in seeds]
    runs += [_run("pcl", s, 0.20 + s / 100 + (s % 2) / 1000, [0.0]) for s in seeds]
    runs += [_run("uniform", s, 0.05, [0.0]) for s in range(2)]  # too few pairs for a claim
    arms, comparisons = summarise(runs)
    ev = {"meta": {"budget": {}, "comparisons": comparisons}, "rows": arms}
    (line,) = report._evidence_headline(ev)
    placebo, uniform = line.split("; against ")[0], line.split("; against ")[1]
    assert "against the placebo +0.10" in placebo and f"({MIN_PAIRS} seeds)" in placebo
    assert uniform.startswith("uniform draws") and "(2 seeds, not established)" in uniform
    assert "DPS" not in line  # no DPS runs: no DPS comparison is invented


def test_equal_time_reads_each_curve_at_the_shorter_runs_training_time() -> None:
    run = _run("pcl", 0, 0.30, [0.0])  # mean@N 0.15 at step 12, 0.30 at step 24, 60 s
    assert at_seconds(run, 60.0, 0.05) == pytest.approx(0.30)
    assert at_seconds(run, 45.0, 0.05) == pytest.approx(0.225)  # step 18: halfway 12 → 24
    assert at_seconds(run, 15.0, 0.05) == pytest.approx(0.10)  # step 6: halfway 0 → 12
    assert at_seconds(run, 15.0, None) is None  # before the first evaluation, no step 0
    # With step times kept, they place the steps: the first 12 steps took 50 of 60 s.
    timed = {**run, "step_seconds": [50 / 12] * 12 + [10 / 12] * 12}
    assert at_seconds(timed, 55.0, 0.05) == pytest.approx(0.225)
    slow = {**_run("pcl", 0, 0.30, [0.0]), "train_seconds": 120.0}
    quick = _run("random", 0, 0.20, [0.0])  # 60 s: slow is read at step 12
    row = compare([slow, quick], "cold", "pcl", "random", start=0.05)
    assert row is not None and row["mean_diff"] == pytest.approx(0.10)
    assert row["train_time_ratio"] == pytest.approx(2.0)
    assert row["equal_time_diff"] == pytest.approx(0.15 - 0.20)
    assert not row["equal_time_established"]  # one pair: below the decision rule


def test_an_equal_time_difference_needs_the_minimum_pairs_too() -> None:
    import learning.tables as report

    def pair(seed: int, gap: float) -> list[dict[str, object]]:
        return [_run("pcl", seed, 0.30 + gap, [0.0]), _run("random", seed, 0.20, [0.0])]

    few = [r for s in range(MIN_PAIRS - 1) for r in pair(s, s / 1000)]
    row = compare(few, "cold", "pcl", "random", start=0.05)
    assert row is not None and row["equal_time_ci95"][0] > 0  # excludes zero, too few pairs
    assert not row["equal_time_established"]
    assert report._equal_time(row).endswith(", not established")
    enough = [*few, *pair(MIN_PAIRS, 0.002)]
    row = compare(enough, "cold", "pcl", "random", start=0.05)
    assert row is not None and row["equal_time_established"]
    assert not report._equal_time(row).endswith("not established")


def test_dynamic_sampling_is_charged_its_extra_rollouts_and_pcl_is_held_to_it(
    tmp_path: Path,
) -> None:
    import json

    import learning.tables as report
    from _render import Results, get_section

    budget = {"steps": 24, "m": 4, "n": 8, "k": 4}
    seeds = range(MIN_PAIRS)
    runs = [_run("random", s, 0.10 + s / 100, [0.0]) for s in seeds]
    runs += [_run("pcl", s, 0.20 + s / 100 + (s % 2) / 1000, [0.0]) for s in seeds]
    # Dynamic sampling drew 3 rounds of m a step on average: 3 × 768 rollouts.
    runs += [{**_run("dynamic_sampling", s, 0.15, [0.0]), "rollouts": 3 * 768} for s in seeds]
    assert passes("dynamic_sampling", budget, 3 * 768, 1792) == pytest.approx(3 * 96 / 1792)
    assert passes("pcl", budget, 768, 1792) == pytest.approx(24 * 4 * 4 / 1792)
    assert passes("uniform", budget, 768, 1792) == pytest.approx(24 * 4 / 1792)
    arms, comparisons = summarise(runs, None, budget)
    by_arm = {a["arm"]: a for a in arms}
    assert by_arm["dynamic_sampling"]["passes"] == pytest.approx(3 * 96 / 1792)
    assert by_arm["dynamic_sampling"]["rollouts"] == 3 * 768
    by = {(c["arm"], c["reference"]): c for c in comparisons}
    assert set(by) == {
        ("pcl", "random"),
        ("pcl", "dynamic_sampling"),
        ("dynamic_sampling", "random"),
    }
    assert by[("pcl", "dynamic_sampling")]["rollout_ratio"] == pytest.approx(1 / 3)
    assert by[("dynamic_sampling", "random")]["rollout_ratio"] == pytest.approx(3.0)
    assert by[("pcl", "random")]["rollout_ratio"] == pytest.approx(1.0)
    ev = {"meta": {"budget": budget, "comparisons": comparisons}, "rows": arms}
    (line,) = report._evidence_headline(ev)
    assert "against DAPO dynamic sampling" in line
    assert "(it generated 3.0× PCL's rollouts; at equal training time" in line
    budget |= {"holdout": 1, "eval_samples": 4}
    meta = {"budget": budget, "runs": runs, "comparisons": comparisons}
    (tmp_path / "evidence.json").write_text(json.dumps({"meta": meta, "rows": arms}))
    text = get_section("evidence").render(Results(tmp_path)) or ""
    assert f"cold, dynamic_sampling against random over {MIN_PAIRS} seeds" in text
    assert "dynamic_sampling generated 3.00× the rollouts of random for the same steps" in text
    assert f"cold, pcl against dynamic_sampling over {MIN_PAIRS} seeds" in text
