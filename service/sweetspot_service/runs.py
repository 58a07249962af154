"""Runs: several training runs (policies) share one service, each with its own value model.

In ``head`` mode every run's model is a head + optimiser over one shared frozen backbone
(and one shared embedding cache); in ``full`` mode each run loads and trains its own copy of
the backbone. A run's model only changes by applying its update log in order.

A run is one *incarnation* of its name (``store.RunRef``): deleting a run and creating it
again makes a new incarnation, and nothing of the old one (log, statistics, idempotency
records, score cache, checkpoints) is keyed so that the new one could see it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from sweetspot_client.schema import UpdateResponse
from sweetspot_service.calibration import CalibrationWindow
from sweetspot_service.store import LEGACY, RunRef
from sweetspot_service.value_model import ValueModel

_KEPT_RESULTS = 4096


@dataclass
class Run:
    name: str
    model: ValueModel
    incarnation: str = LEGACY
    applied_id: str = "0-0"
    """Id of the last update-log entry the model includes."""
    checkpointed_version: int = 0
    last_seq: int = 0
    """Highest log sequence number this process has accepted for the run."""
    last_checkpoint: float = field(default_factory=time.monotonic)
    error: str | None = None
    """Set when the log and the model disagree, its checkpoint failed to load or its model
    diverged; the run then refuses updates (409)."""
    unservable: str | None = None
    """Why the model cannot score (its checkpoint failed to load, or it diverged to
    non-finite values); scores and selections of the run then answer 503 with it."""
    checkpoint_error: str | None = None
    """Why the last checkpoint could not be written; None once one is written again."""
    results: OrderedDict[str, UpdateResponse] = field(default_factory=OrderedDict)
    waiters: dict[str, list[asyncio.Future[UpdateResponse]]] = field(default_factory=dict)
    unrecorded: list[tuple[str, str]] = field(default_factory=list)
    """(idempotency key, response) of applied updates whose response the store missed."""
    calibration: CalibrationWindow = field(default_factory=lambda: CalibrationWindow(2048))
    """Progressive-validation points of the last applied prompts (``calibration.py``); like
    the model, a function of the applied log, and checkpointed with it."""
    calibration_exported: int = -1
    """``calibration.changes`` when its series were last exported (``export_calibration``)."""

    @property
    def ref(self) -> RunRef:
        return RunRef(self.name, self.incarnation)

    @property
    def version(self) -> int:
        return self.model.version

    @property
    def feature_width(self) -> int | None:
        """A feature run's vector width (``features.py``); None for a text run."""
        return self.model.feature_width

    @property
    def pending(self) -> int:
        return max(0, self.last_seq - self.model.version)

    def resolve(self, entry_id: str, response: UpdateResponse) -> None:
        """Remember an applied update's response and wake whoever waits for it."""
        self.results[entry_id] = response
        while len(self.results) > _KEPT_RESULTS:
            self.results.popitem(last=False)
        for future in self.waiters.pop(entry_id, []):
            if not future.done():
                future.set_result(response)

    def fail(self, reason: str, *, unservable: bool = False) -> None:
        """Mark the run failed (and, with ``unservable``, its model unusable for scores)."""
        self.error = reason
        if unservable:
            self.unservable = reason

    def fail_waiters(self, exc: Exception) -> None:
        for futures in self.waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
        self.waiters.clear()
