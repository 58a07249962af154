"""Prometheus metrics, defined once, in base units. Each app gets its own registry."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self.update_loss = Gauge(
            "sweetspot_update_loss", "Batch MSE of the last update step.", ["run"], registry=r
        )
        self.prediction_abs_error = Histogram(
            "sweetspot_prediction_abs_error",
            "Per prompt |p̂ − observed mean reward|, measured before the update (online error).",
            buckets=_ERROR_BUCKETS,
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
            "body_timeout (408).",
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

    def forget_run(self, name: str) -> None:
        """Drop a deleted run's labelled series, so they stop being exported."""
        for metric in (self.updates, self.update_loss, self.model_version):
            with contextlib.suppress(KeyError):  # never set for this run
                metric.remove(name)
