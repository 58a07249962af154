"""``BackgroundReporter``: send a trainer's reward reports off its critical path.

Shared by ``PromptCurriculum.report(..., background=True)`` and the trainer integrations
(``integrations.core.TrainerCurriculum``).

Reports go out one at a time, oldest first, each under its own idempotency key; a report the
service could not take is retried with the same key (so it is applied at most once) until it
succeeds, the queue overflows (the oldest waiting report is dropped, with a warning), or the
reporter is closed. What is still waiting can be saved with a checkpoint (``snapshot``) and
submitted again after a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sweetspot_client._base_client import ReportVersions
from sweetspot_client._client import SweetspotClient
from sweetspot_client._exceptions import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    SweetspotError,
)
from sweetspot_client.schema import UpdateResponse

logger = logging.getLogger("sweetspot_client")


@dataclass(frozen=True)
class PendingReport:
    """One step's rewards, grouped by prompt, with the key that makes resending safe."""

    key: str
    step: int
    prompts: list[str]
    rewards: list[list[float]] = field(repr=False)
    features: list[list[float]] | None = field(default=None, repr=False)
    """A feature run's vectors of ``prompts`` (None: a text run)."""
    versions: dict[str, Any] | None = None
    """``ReportVersions.as_dict()`` of the report (None: no policy versions)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, for a checkpoint (``from_dict`` reads it back)."""
        data: dict[str, Any] = {
            "key": self.key,
            "step": self.step,
            "prompts": self.prompts,
            "rewards": self.rewards,
        }
        if self.features is not None:
            data["features"] = self.features
        if self.versions is not None:
            data["versions"] = self.versions
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingReport:
        prompts, features = list(data["prompts"]), data.get("features")
        versions = data.get("versions")
        return cls(
            str(data["key"]), int(data["step"]), prompts, data["rewards"], features, versions
        )


@dataclass
class ReporterCounts:
    sent: int = 0
    conflicts: int = 0
    dropped: int = 0
    failures: int = 0


class BackgroundReporter:
    """A daemon thread that delivers ``PendingReport`` s in order through ``client``.

    ``on_not_found`` runs when the service answers 404 (its run is gone, e.g. an in-memory
    service restarted); the report is then retried. Backoff between failed attempts grows
    from ``backoff_s[0]`` to ``backoff_s[1]`` seconds.
    """

    def __init__(
        self,
        client: SweetspotClient,
        *,
        max_pending: int = 64,
        on_not_found: Callable[[], None] | None = None,
        backoff_s: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.client = client
        self.max_pending = max_pending
        self.counts = ReporterCounts()
        self.last_response: UpdateResponse | None = None
        self.last_seconds: float | None = None
        """Round trip of the last acknowledged report (off the trainer's critical path)."""
        self._on_not_found = on_not_found
        self._backoff = backoff_s
        self._queue: deque[PendingReport] = deque()
        self._inflight: PendingReport | None = None
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, report: PendingReport) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("the reporter is closed")
            self._queue.append(report)
            while self._queue and self.pending() > self.max_pending:
                dropped = self._queue.popleft()
                self.counts.dropped += 1
                logger.warning(
                    "Sweetspot report of step %d dropped: more than %d reports waiting "
                    "(max_pending_reports); is the service down?",
                    dropped.step,
                    self.max_pending,
                )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sweetspot-reporter", daemon=True
                )
                self._thread.start()
            self._cv.notify_all()

    def pending(self) -> int:
        """Reports not yet acknowledged by the service (waiting or in flight)."""
        return len(self._queue) + (self._inflight is not None)

    def snapshot(self) -> list[PendingReport]:
        """Every report not yet acknowledged, oldest first."""
        with self._cv:
            head = [self._inflight] if self._inflight is not None else []
            return head + list(self._queue)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every report to be acknowledged."""
        with self._cv:
            return self._cv.wait_for(lambda: self.pending() == 0, timeout=timeout)

    def close(self, timeout: float = 0.0) -> list[PendingReport]:
        """Flush for up to ``timeout`` seconds, stop the thread; return what was not sent."""
        self.flush(timeout)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(timeout, 1.0))
        return self.snapshot()

    def _run(self) -> None:
        attempt = 0
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._closed or bool(self._queue))
                if self._closed:
                    return
                report = self._inflight = self._queue.popleft()
            retry = self._send(report)
            with self._cv:
                self._inflight = None
                if retry:
                    self._queue.appendleft(report)
                    attempt += 1
                    delay = min(self._backoff[0] * 2 ** (attempt - 1), self._backoff[1])
                    self._cv.wait_for(lambda: self._closed, timeout=delay)
                else:
                    attempt = 0
                self._cv.notify_all()

    def _send(self, report: PendingReport) -> bool:
        """Deliver one report; ``True`` when it should be tried again later."""
        started = time.perf_counter()
        try:
            versions = None if report.versions is None else ReportVersions(**report.versions)
            self.last_response = self.client.update(
                report.prompts,
                report.rewards,
                idempotency_key=report.key,
                features=report.features,
                versions=versions,
            )
            self.last_seconds = time.perf_counter() - started
            self.counts.sent += 1
            return False
        except ConflictError as exc:
            # Keys carry a digest of the body (curriculum_step.report_key), so this is a run
            # that failed, or a key made elsewhere reused; sending it again cannot help.
            self.counts.conflicts += 1
            logger.warning("Sweetspot report of step %d not applied: %s", report.step, exc)
            return False
        except BadRequestError as exc:
            self.counts.dropped += 1
            logger.error("Sweetspot rejected the report of step %d: %s", report.step, exc)
            return False
        except NotFoundError as exc:
            self.counts.failures += 1
            logger.warning("Sweetspot report of step %d: %s", report.step, exc)
            if self._on_not_found is not None:
                self._on_not_found()
            return True
        except SweetspotError as exc:
            self.counts.failures += 1
            logger.warning(
                "Sweetspot report of step %d failed, will retry with the same key: %s",
                report.step,
                exc,
            )
            return True
