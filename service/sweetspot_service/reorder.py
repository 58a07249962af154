"""Reports learned in policy-version order, however late they arrive (within a bound).

What a value model learns from a sequence of reports depends on their order: progressive
validation scores each report before learning from it, and the replay window forgets the
oldest first. Asynchronous trainers report out of order (a slow worker's group of version 5
arrives after a fast one's of version 7), so the same reports would leave different models.

``ReorderWindow`` keeps the reports of the newest ``window`` policy versions *pending*: the
live state is the *settled* state plus the pending reports learned in order of their key
(newest generation version in the report, then its body digest, so equal versions order
the same however they arrive). A report is placed by its key:

- newer than every pending one: learned on the live state at once (in-order arrival costs
  one learn, plus one more when it settles);
- older than some pending one but within ``window`` versions of the newest version seen:
  inserted in its place, and the live state rebuilt from the settled one by learning the
  pending reports again in order;
- ``window`` or more versions older than the newest seen: learned on the settled state in
  arrival order (nothing is dropped; its age still discounts it), and the pending reports
  learned again after it.

A pending report settles (is learned on the settled state too) once the newest version is
``window`` versions past it, or when more than ``max_pending`` reports are pending. So any
arrival order in which no report comes ``window`` versions late, and no more than
``max_pending`` are pending, leaves exactly the state of the in-order one, bit for bit; the
state is a function of the sequence of reports, so replicas and replays agree.

Pure logic: the learner's state and its ``learn`` and ``copy`` are the caller's.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

REORDER_WINDOW = 8.0
"""Default window in policy versions (``--reorder-window``)."""
MAX_PENDING = 64
"""At most this many reports wait unsettled (memory and the cost of a rebuild are bounded)."""

S = TypeVar("S")
B = TypeVar("B")
R = TypeVar("R")
Key = tuple[float, str]


@dataclass(frozen=True)
class Pending(Generic[B]):
    key: Key
    batch: B


class ReorderWindow(Generic[S, B, R]):
    def __init__(
        self,
        learn: Callable[[S, B], R],
        copy: Callable[[S], S],
        *,
        window: float = REORDER_WINDOW,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if window <= 0:
            raise ValueError(f"the reorder window must be positive, got {window}")
        self.learn = learn
        self.copy = copy
        self.window = window
        self.max_pending = max(1, max_pending)
        self.settled: S | None = None
        """The state before the first pending report (None while none is pending)."""
        self.pending: list[Pending[B]] = []

    def add(self, live: S, newest: float, key: Key, batch: B) -> tuple[S, R, bool]:
        """Learn ``batch`` in its place; returns the live state (the same object or a rebuilt
        one), what learning it returned, and whether the pending reports were learned again.
        ``newest`` is the newest version seen before this report."""
        late = key[0] <= newest - self.window
        if not self.pending:
            if late:
                return live, self.learn(live, batch), False
            self.settled = self.copy(live)
            self.pending.append(Pending(key, batch))
            return live, self.learn(live, batch), False
        assert self.settled is not None
        if late:
            learned = self.learn(self.settled, batch)
            return self._rebuild(), learned, True
        if key >= self.pending[-1].key:
            self.pending.append(Pending(key, batch))
            return live, self.learn(live, batch), False
        keys = [p.key for p in self.pending]
        place = bisect.bisect_right(keys, key)
        self.pending.insert(place, Pending(key, batch))
        live = self.copy(self.settled)
        result: R | None = None
        for i, item in enumerate(self.pending):
            outcome = self.learn(live, item.batch)
            if i == place:
                result = outcome
        assert result is not None
        return live, result, True

    def settle(self, newest: float) -> None:
        """Learn on the settled state the pending reports ``window`` versions behind
        ``newest``, and the oldest beyond ``max_pending``."""
        while self.pending and (
            self.pending[0].key[0] <= newest - self.window or len(self.pending) > self.max_pending
        ):
            assert self.settled is not None
            self.learn(self.settled, self.pending.pop(0).batch)
        if not self.pending:
            self.settled = None

    def _rebuild(self) -> S:
        assert self.settled is not None
        live = self.copy(self.settled)
        for item in self.pending:
            self.learn(live, item.batch)
        return live
