"""Handing a step's rewards back to its selection strategy: blocking or overlapped.

``blocking`` (the strict order): the loop calls ``strategy.observe`` after the policy update
and weight sync and waits for it; for PCL that is ``POST /v1/update``, which returns only once
the value model has taken its training step, so the next selection always sees every reward.

``overlapped``: the loop hands the rewards over as soon as they are computed, before the
policy update. For a strategy whose ``observe`` calls a service (``strategy.remote``: PCL) it
runs on one worker thread, so reports reach the service one at a time, oldest first, each under
the idempotency key of its step (``PromptCurriculum.report``; the client retries with the same
key). The value model trains while the policy updates, and the next selection uses whichever
version the service has applied by then. Before selecting, the loop waits only while more than
``max_lag`` reports are unacknowledged, and after the last step until all are. A report that
failed raises in the loop at the next wait or ``latest()``, as it would in blocking mode.
Strategies that keep their own state (bayes, history, dps) are observed in the loop in both
modes: their ``observe`` takes microseconds and ``select`` reads what it writes.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from sweetspot_trainer.selection import Selection, SelectionStrategy

ValueUpdate = Literal["blocking", "overlapped"]


class StrategyFeedback:
    """Delivers each step's rewards to ``strategy`` and keeps the newest metrics it returned.

    ``background`` is true when observations run on the worker thread (overlapped mode and a
    remote strategy). Metrics of a remote strategy carry ``value_step``: the step whose
    report they answer, which in overlapped mode may be older than the step being logged.
    """

    def __init__(self, strategy: SelectionStrategy, *, mode: ValueUpdate, max_lag: int) -> None:
        if mode not in ("blocking", "overlapped"):
            raise ValueError(f"value update mode must be 'blocking' or 'overlapped', got {mode!r}")
        if max_lag < 0:
            raise ValueError(f"max_lag must be >= 0, got {max_lag}")
        self.strategy = strategy
        self.mode = mode
        self.max_lag = max_lag
        self.background = mode == "overlapped" and strategy.remote
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweetspot-value-update")
            if self.background
            else None
        )
        self._inflight: deque[Future[dict[str, float]]] = deque()
        self._latest: dict[str, float] = {}

    def send(self, step: int, selection: Selection, rewards: list[list[float]]) -> float:
        """Hand over step ``step``'s rewards ([m][n]); returns the seconds the loop was blocked
        (the whole observation unless it runs in the background)."""
        started = time.perf_counter()
        if self._executor is not None:
            self._inflight.append(self._executor.submit(self._observe, step, selection, rewards))
        else:
            self._latest = self._observe(step, selection, rewards)
        return time.perf_counter() - started

    def unacknowledged(self) -> int:
        """Reports sent but not yet answered by the service."""
        self._collect()
        return len(self._inflight)

    def wait(self, most: int) -> float:
        """Block until at most ``most`` reports are unacknowledged; returns seconds waited.

        Raises the first failed report's error.
        """
        started = time.perf_counter()
        while len(self._inflight) > most:
            self._latest = self._inflight.popleft().result()
        return time.perf_counter() - started

    def wait_before_select(self) -> float:
        """The overlapped mode's lag bound: wait while more than ``max_lag`` are unanswered."""
        return self.wait(self.max_lag)

    def latest(self) -> dict[str, float]:
        """Metrics of the newest answered observation (empty before the first)."""
        self._collect()
        return dict(self._latest)

    def close(self) -> None:
        """Stop the worker: a report in flight finishes, queued ones are dropped."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _collect(self) -> None:
        while self._inflight and self._inflight[0].done():
            self._latest = self._inflight.popleft().result()

    def _observe(
        self, step: int, selection: Selection, rewards: list[list[float]]
    ) -> dict[str, float]:
        metrics = self.strategy.observe(selection, rewards)
        if self.strategy.remote:
            metrics = {**metrics, "value_step": float(step)}
        return metrics
