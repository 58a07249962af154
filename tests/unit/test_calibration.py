"""The calibration window's arithmetic against hand-computed values, and how updates feed it."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

import pytest
import torch

from sweetspot_service.calibration import CalibrationWindow, fast_spearman, ranks, spearman
from sweetspot_service.checkpoint import load_checkpoint, save_checkpoint
from sweetspot_service.core.metrics import Metrics
from sweetspot_service.store import DEFAULT_REF, StatsDelta
from sweetspot_service.store_memory import InMemoryStore
from sweetspot_service.update_log import first_seen, stats_deltas

# |p̂ − r̄| = 0.1, 0.1, 0.4, 0.2; squared 0.01, 0.01, 0.16, 0.04
PREDICTED = [0.1, 0.4, 0.35, 0.8]
OBSERVED = [0.0, 0.5, 0.75, 1.0]
FIRST_SEEN: list[bool | None] = [True, True, False, None]


def test_mae_brier_spearman_and_cohorts_match_hand_computed_values() -> None:
    window = CalibrationWindow(8)
    window.add(PREDICTED, OBSERVED, FIRST_SEEN)
    summary = window.summary()
    assert summary.counts == {"all": 4, "first_seen": 2, "revisited": 1}
    assert summary.mae["all"] == pytest.approx(0.8 / 4)
    assert summary.mae["first_seen"] == pytest.approx(0.1)
    assert summary.mae["revisited"] == pytest.approx(0.4)
    assert summary.brier == pytest.approx(0.22 / 4)
    # p̂ ranks [1, 3, 2, 4], r̄ ranks [1, 2, 3, 4]: Σd² = 2, ρ = 1 − 6·2 / (4·15) = 0.8
    assert summary.spearman == pytest.approx(0.8)


def test_bins_count_and_average_each_p_hat_decile() -> None:
    window = CalibrationWindow(8)
    window.add([0.0, 0.31, 0.35, 0.8, 1.0], [0.0, 0.0, 1.0, 0.5, 1.0], [True] * 5)
    bins = window.summary().bins
    assert [(b.lower, b.upper) for b in bins][:2] == [(0.0, 0.1), (0.1, 0.2)]
    assert [b.count for b in bins] == [1, 0, 0, 2, 0, 0, 0, 0, 1, 1]
    assert bins[3].mean_predicted == pytest.approx(0.33)
    assert bins[3].mean_observed == pytest.approx(0.5)
    assert bins[1].mean_predicted is None and bins[1].mean_observed is None
    assert bins[9].mean_predicted == 1.0  # the last bin includes 1.0


def test_the_window_keeps_only_the_last_n_prompts() -> None:
    window = CalibrationWindow(3)
    window.add(PREDICTED[:2], OBSERVED[:2], FIRST_SEEN[:2])
    window.add(PREDICTED[2:], OBSERVED[2:], FIRST_SEEN[2:])  # evicts the first point
    summary = window.summary()
    assert len(window) == 3
    assert summary.counts == {"all": 3, "first_seen": 1, "revisited": 1}
    assert summary.mae["all"] == pytest.approx(0.7 / 3)
    assert summary.mae["first_seen"] == pytest.approx(0.1)
    assert summary.brier == pytest.approx(0.21 / 3)


def test_undefined_values_are_none_not_nan() -> None:
    empty = CalibrationWindow(4).summary()
    assert empty.mae == {"all": None, "first_seen": None, "revisited": None}
    assert empty.brier is None and empty.spearman is None
    window = CalibrationWindow(4)
    window.add([0.5, 0.5, 0.5], [0.0, 1.0, 0.5], [True, True, True])  # a fresh model: p̂ = 0.5
    summary = window.summary()
    assert summary.spearman is None  # constant p̂: no ranking to judge
    assert summary.mae["revisited"] is None and summary.mae["first_seen"] == pytest.approx(1 / 3)


def test_ties_take_average_ranks() -> None:
    assert ranks([0.2, 0.1, 0.2]) == [2.5, 1.0, 2.5]
    # ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]: cov 4.5, var 4.5 and 5 -> 4.5 / √22.5 = 3 / √10
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10))
    assert spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", range(3))
def test_spearman_matches_the_rank_formula_without_ties(seed: int) -> None:
    rng = random.Random(seed)
    x, y = [rng.random() for _ in range(50)], [rng.random() for _ in range(50)]
    rx, ry = ranks(x), ranks(y)
    d2 = sum((a - b) ** 2 for a, b in zip(rx, ry, strict=True))
    assert spearman(x, y) == pytest.approx(1 - 6 * d2 / (50 * (50**2 - 1)))


def test_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    window = CalibrationWindow(8)
    window.add(PREDICTED, OBSERVED, FIRST_SEEN)
    model_state = {"version": 1, "w": torch.zeros(2), "calibration": window.state()}
    save_checkpoint(tmp_path, "r", model_state, "1-0")
    loaded = load_checkpoint(tmp_path, "r")
    assert loaded is not None
    restored = CalibrationWindow(3)  # a smaller window keeps the newest points
    restored.load_state(loaded[0]["calibration"])
    assert restored.state() == {
        "predicted": PREDICTED[1:],
        "observed": OBSERVED[1:],
        "first_seen": FIRST_SEEN[1:],
        "uncertainty": [None] * 3,
    }


def test_the_store_flags_prompts_whose_count_was_zero_before_the_append() -> None:
    async def scenario() -> list[str | None]:
        store, r = InMemoryStore(), DEFAULT_REF
        await store.append_update(r, "k1", "d1", "b1", stats_deltas(["a", "b", "a"], [[1]] * 3))
        await store.append_update(r, "k2", "d2", "b2", stats_deltas(["c", "a"], [[0], [1]]))
        await store.append_update(r, "k2", "d2", "b2", [StatsDelta("x", 1, 1.0)])  # retry
        return [e.first_seen for e in await store.read_updates(r, "0-0", 10)]

    assert asyncio.run(scenario()) == ["11", "10"]
    assert first_seen(["a", "b", "a"], "11") == [True, True, True]
    assert first_seen(["c", "a"], "10") == [True, False]
    assert first_seen(["c", "a"], None) == [None, None]  # logged before flags existed


def test_metrics_export_the_window_and_forget_a_deleted_run() -> None:
    metrics = Metrics()
    window = CalibrationWindow(8)
    window.add(PREDICTED, OBSERVED, FIRST_SEEN)
    metrics.record_calibration("a", window.summary())
    metrics.record_calibration("b", CalibrationWindow(8).summary())
    registry = metrics.registry
    mae = registry.get_sample_value
    assert mae("sweetspot_calibration_mae", {"run": "a", "cohort": "revisited"}) == pytest.approx(
        0.4
    )
    assert mae("sweetspot_calibration_spearman", {"run": "a"}) == pytest.approx(0.8)
    assert mae("sweetspot_calibration_bin_prompts", {"run": "a", "bin": "0.3-0.4"}) == 1
    assert mae("sweetspot_calibration_bin_observed", {"run": "a", "bin": "0.3-0.4"}) == 0.75
    assert mae("sweetspot_calibration_mae", {"run": "b", "cohort": "all"}) is None  # empty
    assert mae("sweetspot_calibration_prompts", {"run": "b", "cohort": "all"}) == 0
    metrics.prediction_abs_error.labels("a").observe(0.1)
    metrics.forget_run("a")
    exported = {s.labels.get("run") for f in registry.collect() for s in f.samples}
    assert "a" not in exported and "b" in exported


def test_uncertainty_is_averaged_per_cohort_and_survives_a_checkpoint() -> None:
    window = CalibrationWindow(10)
    window.add([0.5, 0.2], [1.0, 0.0], [True, False], [0.3, 0.1])
    window.add([0.4], [0.0], [True])  # a point without an uncertainty counts in mae only
    summary = window.summary()
    assert summary.uncertainty == {
        "all": pytest.approx(0.2),
        "first_seen": pytest.approx(0.3),
        "revisited": pytest.approx(0.1),
    }
    restored = CalibrationWindow(10)
    restored.load_state(window.state())
    assert restored.summary() == summary
    old = window.state()
    del old["uncertainty"]  # a checkpoint written before uncertainties existed
    restored.load_state(old)
    assert restored.summary().uncertainty["all"] is None


def test_fast_spearman_matches_the_reference_with_ties() -> None:
    rng = random.Random(3)
    for n in (2, 3, 17, 500):
        x = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(n)]
        y = [rng.random() if i % 3 else x[i] for i in range(n)]
        reference = spearman(x, y)
        fast = fast_spearman(x, y)
        assert (fast is None) == (reference is None)
        if reference is not None:
            assert fast == pytest.approx(reference, abs=1e-12)
    assert fast_spearman([0.5] * 4, [0.0, 1.0, 0.5, 0.2]) is None


def test_running_sums_agree_exactly_with_a_window_rebuilt_from_its_points() -> None:
    """Evicting along the way and restoring the survivors give the same numbers, bit for
    bit: replicas and restarts must agree, whatever order points came and went in."""
    rng = random.Random(0)
    window = CalibrationWindow(50)
    for _ in range(37):
        k = rng.randint(1, 9)
        window.add(
            [rng.random() for _ in range(k)],
            [rng.randint(0, 8) / 8 for _ in range(k)],
            [rng.choice([True, False, None]) for _ in range(k)],
            [rng.random() / 4 for _ in range(k)],
        )
    restored = CalibrationWindow(50)
    restored.load_state(window.state())
    assert len(window) == 50
    assert restored.summary() == window.summary()
    state = window.state()
    naive = [abs(p - r) for p, r in zip(state["predicted"], state["observed"], strict=True)]
    assert window.summary().mae["all"] == pytest.approx(sum(naive) / 50, abs=1e-12)


def test_the_summary_is_computed_once_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import sweetspot_service.calibration as calibration

    calls = []
    real = calibration.fast_spearman
    monkeypatch.setattr(calibration, "fast_spearman", lambda x, y: calls.append(1) or real(x, y))
    window = CalibrationWindow(1000)
    window.add(PREDICTED, OBSERVED, FIRST_SEEN)
    first = window.summary()
    assert all(window.summary() is first for _ in range(5)) and len(calls) == 1
    window.add([0.5], [1.0], [True])
    assert window.summary() is not first and len(calls) == 2


def test_calibration_reads_wait_in_the_read_queue() -> None:
    from sweetspot_service.api.middleware import _admission_class

    assert _admission_class("/v1/runs/default/calibration") == "score"
    assert _admission_class("/v1/score") == "score"
    assert _admission_class("/v1/update") == "update"
    assert _admission_class("/healthz") is None and _admission_class("/v1/runs/x") is None


def test_the_window_reports_the_version_of_its_own_data() -> None:
    """The model's counter moves before its update's points arrive (finding 10): reads say
    the version the window covers, from adds and restores only."""
    window = CalibrationWindow(8)
    assert window.version == 0
    window.add(PREDICTED[:2], OBSERVED[:2], FIRST_SEEN[:2], version=1)
    window.add(PREDICTED[2:], OBSERVED[2:], FIRST_SEEN[2:], version=2)
    assert window.version == 2
    restored = CalibrationWindow(8)
    restored.load_state(window.state(), 2)
    assert restored.version == 2 and restored.summary() == window.summary()
