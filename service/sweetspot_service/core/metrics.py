"""Prometheus metrics, defined once, in base units. Each app gets its own registry."""

from __future__ import annotations

import contextlib
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sweetspot_client.schema import GroupFate
from sweetspot_service.calibration import BINS, COHORTS, Summary

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_ERROR_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sweetspot_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "sweetspot_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_prompts = Histogram(
            "sweetspot_batch_prompts",
            "Prompts per request.",
            ["route"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.prompts_scored = Counter(
            "sweetspot_prompts_scored_total", "Prompts scored (score and select).", registry=r
        )
        self.updates = Counter(
            "sweetspot_updates_total", "Applied value-model updates.", ["run"], registry=r
        )
        self.reported_groups = Counter(
            "sweetspot_reported_groups_total",
            "Groups of answers in applied updates, by the fate the trainer reported (trained, "
            "stale_dropped, filtered, failed; trained when the report did not say). "
            "Failed groups are not learned from.",
            ["run", "fate"],
            registry=r,
        )
        self.policy_lag = Gauge(
            "sweetspot_policy_lag",
            "The run's estimate of generation version minus selection version, in policy "
            "versions (0 for a synchronous trainer or reports without versions).",
            ["run"],
            registry=r,
        )
        self.update_loss = Gauge(
            "sweetspot_update_loss", "Batch MSE of the last update step.", ["run"], registry=r
        )
        self.prediction_abs_error = Histogram(
            "sweetspot_prediction_abs_error",
            "Per prompt |p̂ − observed mean reward|, measured before the update (online error), "
            "by run.",
            ["run"],
            buckets=_ERROR_BUCKETS,
            registry=r,
        )
        self.calibration_mae = Gauge(
            "sweetspot_calibration_mae",
            "Mean |p̂ before the update − observed mean reward| over the run's last "
            "calibration_window reported prompts, by cohort: first_seen (no reward seen "
            "before: generalisation error), revisited, all. Absent while a cohort is empty.",
            ["run", "cohort"],
            registry=r,
        )
        self.calibration_uncertainty = Gauge(
            "sweetspot_calibration_uncertainty",
            "Mean predicted standard deviation of p̂ before the update over the run's "
            "calibration window, by cohort: compare with sweetspot_calibration_mae. Absent "
            "while a cohort has no point with an uncertainty.",
            ["run", "cohort"],
            registry=r,
        )
        self.calibration_prompts = Gauge(
            "sweetspot_calibration_prompts",
            "Reported prompts in the run's calibration window, by cohort.",
            ["run", "cohort"],
            registry=r,
        )
        self.calibration_brier = Gauge(
            "sweetspot_calibration_brier",
            "Mean (p̂ − observed mean reward)² over the calibration window (squared error "
            "against each prompt's empirical success rate).",
            ["run"],
            registry=r,
        )
        self.calibration_spearman = Gauge(
            "sweetspot_calibration_spearman",
            "Spearman rank correlation of p̂ and observed mean reward over the calibration "
            "window; absent while undefined (under 2 prompts, or p̂ or rewards all equal).",
            ["run"],
            registry=r,
        )
        self.calibration_bin_prompts = Gauge(
            "sweetspot_calibration_bin_prompts",
            "Prompts of the calibration window whose p̂ falls in the bin (10 bins of width 0.1).",
            ["run", "bin"],
            registry=r,
        )
        self.calibration_bin_predicted = Gauge(
            "sweetspot_calibration_bin_predicted",
            "Mean p̂ of the calibration window's prompts in the bin; absent when it is empty.",
            ["run", "bin"],
            registry=r,
        )
        self.calibration_bin_observed = Gauge(
            "sweetspot_calibration_bin_observed",
            "Mean observed reward of the calibration window's prompts in the bin (compare "
            "with sweetspot_calibration_bin_predicted); absent when it is empty.",
            ["run", "bin"],
            registry=r,
        )
        self.model_version = Gauge(
            "sweetspot_model_version", "Current value-model version.", ["run"], registry=r
        )
        self.runs = Gauge(
            "sweetspot_runs", "Runs this service holds a value model for.", registry=r
        )
        self.rejected = Counter(
            "sweetspot_rejected_requests_total",
            "Requests turned away at the edge: overloaded (429), unauthorised (401/403), "
            "body_timeout (408), imports (429: max_concurrent_imports files arriving).",
            ["reason"],
            registry=r,
        )
        self.queued = Gauge(
            "sweetspot_admitted_requests",
            "Requests admitted and not yet answered, by class (score, update).",
            ["kind"],
            registry=r,
        )
        self.reading_bodies = Gauge(
            "sweetspot_request_bodies_reading",
            "Requests whose body is still arriving (they hold no admission slot yet).",
            registry=r,
        )
        self.score_batch_prompts = Histogram(
            "sweetspot_score_batch_prompts",
            "Prompts per forward batch formed by the dynamic batcher.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.score_cache_hits = Counter(
            "sweetspot_score_cache_hits_total",
            "Prompts answered from the score cache (prompt hash, model version).",
            registry=r,
        )
        self.store_errors = Counter(
            "sweetspot_store_errors_total",
            "Store (Redis) operations that failed because it was unavailable.",
            ["op"],
            registry=r,
        )
        self.model_busy_seconds = Counter(
            "sweetspot_model_thread_busy_seconds_total",
            "Time the model thread spent computing (forward, update, checkpoint state); "
            "its rate is the model's utilisation, 1.0 = saturated.",
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "sweetspot_checkpoint_duration_seconds",
            "Time to write one run's checkpoint.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_ready = Gauge(
            "sweetspot_model_ready", "1 once the value model is loaded.", registry=r
        )
        self.checkpoint_errors = Counter(
            "sweetspot_checkpoint_errors_total",
            "Checkpoint writes that failed (disk full, folder unwritable); updates are kept "
            "in the log meanwhile.",
            registry=r,
        )
        self.checkpoint_failing_runs = Gauge(
            "sweetspot_checkpoint_failing_runs",
            "Runs whose last checkpoint write failed.",
            registry=r,
        )
        self.failed_runs = Gauge(
            "sweetspot_failed_runs",
            "Runs that refuse updates because their log and model disagree (see /readyz).",
            registry=r,
        )

    def record_calibration(self, run: str, summary: Summary) -> None:
        """Export one run's calibration window; undefined values are removed, not NaN."""
        for cohort in COHORTS:
            self.calibration_prompts.labels(run, cohort).set(summary.counts[cohort])
            _set_or_remove(self.calibration_mae, (run, cohort), summary.mae[cohort])
            _set_or_remove(self.calibration_uncertainty, (run, cohort), summary.uncertainty[cohort])
        _set_or_remove(self.calibration_brier, (run,), summary.brier)
        _set_or_remove(self.calibration_spearman, (run,), summary.spearman)
        for b in summary.bins:
            label = bin_label(b.lower, b.upper)
            self.calibration_bin_prompts.labels(run, label).set(b.count)
            _set_or_remove(self.calibration_bin_predicted, (run, label), b.mean_predicted)
            _set_or_remove(self.calibration_bin_observed, (run, label), b.mean_observed)

    def forget_run(self, name: str) -> None:
        """Drop a deleted run's labelled series, so they stop being exported."""
        for metric in (
            self.updates,
            self.update_loss,
            self.policy_lag,
            self.model_version,
            self.prediction_abs_error,
            self.calibration_brier,
            self.calibration_spearman,
        ):
            with contextlib.suppress(KeyError):  # never set for this run
                metric.remove(name)
        per_value = {
            self.reported_groups: FATES,
            self.calibration_mae: COHORTS,
            self.calibration_uncertainty: COHORTS,
            self.calibration_prompts: COHORTS,
            self.calibration_bin_prompts: BIN_LABELS,
            self.calibration_bin_predicted: BIN_LABELS,
            self.calibration_bin_observed: BIN_LABELS,
        }
        for gauge, values in per_value.items():
            for value in values:
                with contextlib.suppress(KeyError):
                    gauge.remove(name, value)


def bin_label(lower: float, upper: float) -> str:
    """The ``bin`` label: ``0.3-0.4`` (the last bin, ``0.9-1.0``, includes 1.0)."""
    return f"{lower:.1f}-{upper:.1f}"


FATES = get_args(GroupFate)
"""The ``fate`` label's values."""
BIN_LABELS = tuple(bin_label(i / BINS, (i + 1) / BINS) for i in range(BINS))


def _set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is not None:
        gauge.labels(*labels).set(value)
    else:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
