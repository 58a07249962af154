"""Per-run calibration over real HTTP: what the service reports, against what a client can
compute from its own scores and update answers; the per-run series on /metrics."""

from __future__ import annotations

import asyncio
import statistics

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sweetspot_client import AsyncSweetspotClient, NotFoundError, SweetspotClient
from sweetspot_client.schema import UpdateResponse

FIRST = [f"What is {a} times {a + 3}?" for a in range(4)]
LATER = [f"Name a prime between {a * 10} and {a * 10 + 9}." for a in range(3)]
REWARDS_FIRST = [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0] * 4]
REWARDS_LATER = [[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def mean_reward(rewards: list[float]) -> float:
    return sum(rewards) / len(rewards)


def average_ranks(values: list[float]) -> list[float]:
    """Independent of the service's code: 1 + smaller ones + half the other equal ones."""
    return [1 + sum(w < v for w in values) + (sum(w == v for w in values) - 1) / 2 for v in values]


def weighted_mean(answers: list[UpdateResponse], field: str) -> float:
    total = sum(getattr(a, field) * a.num_prompts for a in answers)
    return total / sum(a.num_prompts for a in answers)


def metric_samples(service_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{service_url}/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_runs_report_calibration_as_json_and_on_metrics(service_url: str) -> None:
    with (
        SweetspotClient(base_url=service_url, timeout=30, run="calib-a") as a,
        SweetspotClient(base_url=service_url, timeout=30, run="calib-b") as b,
    ):
        a.create_run("calib-a")
        b.create_run("calib-b")
        predicted: list[float] = []
        observed: list[float] = []
        answers: list[UpdateResponse] = []
        # first seen, then the same prompts again (revisited), then new ones (first seen)
        for prompts, rewards in (
            (FIRST, REWARDS_FIRST),
            (FIRST, REWARDS_FIRST),
            (LATER, REWARDS_LATER),
        ):
            scores = a.score(prompts).scores  # the same model version the update starts from
            a.select(prompts, m=2)
            answer = a.update(prompts, rewards)
            targets = [mean_reward(r) for r in rewards]
            mae = sum(abs(p - t) for p, t in zip(scores, targets, strict=True)) / len(targets)
            assert answer.mae_before == pytest.approx(mae, abs=1e-4)
            predicted += scores
            observed += targets
            answers.append(answer)
        b.score(LATER)
        other = b.update(LATER, REWARDS_LATER)

        report = a.calibration()
        assert report.run == "calib-a" and report.model_version == 3 and report.window == 2048
        assert (report.all.prompts, report.first_seen.prompts, report.revisited.prompts) == (
            11,
            7,
            4,
        )
        assert report.all.mae == pytest.approx(weighted_mean(answers, "mae_before"), abs=1e-6)
        assert report.first_seen.mae == pytest.approx(
            weighted_mean([answers[0], answers[2]], "mae_before"), abs=1e-6
        )
        assert report.revisited.mae == pytest.approx(answers[1].mae_before, abs=1e-6)
        assert report.brier == pytest.approx(weighted_mean(answers, "mse_before"), abs=1e-6)
        spearman = statistics.correlation(average_ranks(predicted), average_ranks(observed))
        assert report.spearman == pytest.approx(spearman, abs=1e-3)
        for b_ in report.bins:
            members = [
                i
                for i, p in enumerate(predicted)
                if b_.lower <= p < b_.upper or (b_.upper == 1.0 and p == 1.0)
            ]
            assert b_.prompts == len(members)
            if members:
                assert b_.mean_predicted == pytest.approx(
                    statistics.fmean(predicted[i] for i in members), abs=1e-4
                )
                assert b_.mean_observed == pytest.approx(
                    statistics.fmean(observed[i] for i in members), abs=1e-9
                )
        report_b = b.calibration()
        assert (report_b.first_seen.prompts, report_b.revisited.prompts) == (3, 0)
        assert report_b.all.mae == pytest.approx(other.mae_before, abs=1e-6)
        assert report_b.revisited.mae is None and report_b.spearman is None  # fresh p̂ = 0.5

        async def from_async() -> object:
            async with AsyncSweetspotClient(base_url=service_url, run="calib-a") as client:
                return await client.calibration()

        assert asyncio.run(from_async()) == report
        with pytest.raises(NotFoundError):
            a.calibration("no-such-run")

        samples = metric_samples(service_url)

        def value(name: str, **labels: str) -> float | None:
            return samples.get((name, frozenset(labels.items())))

        for cohort, error in (("first_seen", report.first_seen), ("revisited", report.revisited)):
            assert value("sweetspot_calibration_mae", run="calib-a", cohort=cohort) == (
                pytest.approx(error.mae)
            )
        assert value("sweetspot_calibration_spearman", run="calib-a") == pytest.approx(
            report.spearman
        )
        assert value("sweetspot_calibration_brier", run="calib-b") == pytest.approx(report_b.brier)
        assert value("sweetspot_calibration_spearman", run="calib-b") is None
        assert value("sweetspot_calibration_prompts", run="calib-b", cohort="revisited") == 0
        bin_counts = [
            value(
                "sweetspot_calibration_bin_prompts",
                run="calib-a",
                bin=f"{i / 10:.1f}-{(i + 1) / 10:.1f}",
            )
            for i in range(10)
        ]
        assert bin_counts == [b_.prompts for b_ in report.bins]
        assert value("sweetspot_prediction_abs_error_count", run="calib-a") == 11
        assert value("sweetspot_calibration_mae", run="calib-b", cohort="all") == pytest.approx(
            report_b.all.mae
        )

        a.delete_run("calib-a")
        runs_left = {dict(labels).get("run") for _, labels in metric_samples(service_url)}
        assert "calib-a" not in runs_left and "calib-b" in runs_left
        b.delete_run("calib-b")
