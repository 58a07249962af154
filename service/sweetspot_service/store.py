"""Where the service keeps state that outlives one request.

``StateStore`` is the seam between the service and its state. Two implementations:

- ``InMemoryStore`` (``store_memory.py``): the embedded default; nothing survives the process.
- ``RedisStore`` (``store_redis.py``): shared and durable, chosen by ``SWEETSPOT_REDIS_URL``.

What a store keeps, per run:

- the **update log** (write-ahead log): every accepted ``/v1/update`` body, in order, each
  with a sequence number ``seq`` (1, 2, …). The value model's version after applying entry
  ``seq`` is ``seq``, so a model restored from a checkpoint and replayed is at exactly the
  version it had before.
- **idempotency records**: ``Idempotency-Key`` → (body digest, log entry, response once
  applied). Appending an update and writing its record is one atomic step.
- **per-prompt statistics** (observed reward count, sum, last ``seq``), updated in that same
  atomic step, so a retried update never counts twice. The same step notes in the log entry
  which of its prompts had count 0 before (``LogEntry.first_seen``), so every replica
  applying the log splits first-seen from revisited prompts alike (``calibration.py``).
- a **score cache** keyed by (prompt hash, model version).
- how far each service replica has applied each run's log.

And the **run list**: each run's name with its current **incarnation**, an id made when the
run is created, and a feature run's ``feature_width`` (``features.py``), written in the same
atomic step as the create, so every replica and every restart opens the run alike.
Everything above is kept per incarnation (``RunRef``), so a run deleted and created again
under the same name starts empty, whatever a slower replica still holds. The store checks
the incarnation inside its atomic steps: creating a name that exists fails, an append to an
incarnation that is no longer current is refused (``status == "gone"``, nothing written),
and a delete removes exactly the incarnation it names and tombstones it until its state,
and its checkpoint files, are removed (``tombstones``, ``collect``).
``default`` and runs listed by releases before incarnations have the incarnation ``LEGACY``
(``""``), whose state keeps its old keys.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from sweetspot_client.schema import DEFAULT_RUN

LEGACY = ""
"""The incarnation of ``default`` and of runs created before incarnations existed."""


class RunRef(NamedTuple):
    """One incarnation of a run: what every per-run piece of state is keyed by."""

    name: str
    incarnation: str = LEGACY

    def __str__(self) -> str:
        return self.name if self.incarnation == LEGACY else f"{self.name}@{self.incarnation}"


DEFAULT_REF = RunRef(DEFAULT_RUN, LEGACY)


def new_incarnation() -> str:
    """A fresh incarnation id: 16 hex digits (never ``LEGACY``, never a legacy key part)."""
    return secrets.token_hex(8)


class RunLimitError(Exception):
    """``create_run`` found the store's run list at ``max_runs`` runs: nothing created."""

    def __init__(self, max_runs: int) -> None:
        super().__init__(f"the store lists {max_runs} runs or more")
        self.max_runs = max_runs


class StoreUnavailableError(Exception):
    """The store cannot be reached (Redis down or timing out).

    ``outcome_unknown`` is True when a write was sent and no reply came (a timeout, or the
    connection lost while waiting): the store may have applied it. False means the write
    certainly never reached the store (no connection could be made).
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


def prompt_hash(prompt: str) -> str:
    """Stable 128-bit hex digest of a prompt: the key of its statistics and cached scores."""
    return hashlib.blake2b(prompt.encode(), digest_size=16).hexdigest()


def entry_key(entry_id: str) -> tuple[int, int]:
    """Log entry ids (Redis stream ids, ``<ms>-<n>``) as comparable tuples."""
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


@dataclass(frozen=True)
class PromptStats:
    """What has been observed for one prompt across updates."""

    count: int = 0
    reward_sum: float = 0.0
    last_seq: int = 0

    @property
    def mean(self) -> float:
        return self.reward_sum / self.count if self.count else math.nan


@dataclass(frozen=True)
class StatsDelta:
    """One prompt's contribution to its statistics from one update."""

    prompt_hash: str
    count: int
    reward_sum: float


@dataclass(frozen=True)
class AppendResult:
    """What ``append_update`` did.

    ``new``: appended as ``entry_id``/``seq``. ``duplicate``: the key was seen with the same
    body (``response`` is set once it has been applied). ``conflict``: the key was seen with
    a different body. ``gone``: the incarnation is no longer current (the run was deleted,
    or deleted and created again): nothing was written.
    """

    status: Literal["new", "duplicate", "conflict", "gone"]
    entry_id: str
    seq: int
    response: str | None = None


@dataclass(frozen=True)
class LogEntry:
    entry_id: str
    seq: int
    key: str
    body: str
    first_seen: str | None = None
    """One character per ``StatsDelta`` of the append, in its order: ``1`` when the prompt's
    statistics had count 0 before this update, else ``0``. ``None``: written by a release
    that did not record it."""


def first_seen_flags(before: list[int]) -> str:
    """``LogEntry.first_seen`` from each delta's prompt count before the append."""
    return "".join("1" if count == 0 else "0" for count in before)


class StateStore(Protocol):
    """Async, so the Redis implementation never blocks the event loop.

    Every method may raise ``StoreUnavailableError``.
    """

    kind: str

    async def ping(self) -> None: ...

    async def durability_warning(self) -> str | None:
        """Why an acknowledged update might not survive a crash of the store, if it might."""
        ...

    async def append_update(
        self, run: RunRef, key: str, digest: str, body: str, stats: list[StatsDelta]
    ) -> AppendResult:
        """Append atomically (see the module docstring). A ``StoreUnavailableError`` says
        in ``outcome_unknown`` whether the append may have happened all the same."""
        ...

    async def read_updates(self, run: RunRef, after: str, count: int) -> list[LogEntry]: ...

    async def acquire_leases(
        self, run: RunRef, hashes: list[str], want: int, ttl_s: float
    ) -> list[int]:
        """Lease up to ``want`` of ``hashes`` (prompt hashes in preference order) for ``ttl_s``
        seconds, atomically across replicas: the positions leased, in order; a prompt leased
        and not yet released or expired is skipped."""
        ...

    async def release_leases(self, run: RunRef, hashes: list[str]) -> None:
        """End the leases of ``hashes`` (reported prompts return to the pool)."""
        ...

    async def resume_log(self, run: RunRef, version: int, applied_id: str) -> str:
        """Where to read ``run``'s log after restoring a checkpoint at ``version`` whose last
        entry was ``applied_id``.

        A log that outlives the process (Redis) still has that entry: ``applied_id``. The
        in-memory log is new in this process and has none of the old entries, so their ids
        mean nothing in it: it continues its sequence after ``version`` instead (the next
        append gets ``version + 1``) and answers its own id for that position.
        """
        ...

    async def log_length(self, run: RunRef) -> int: ...

    async def complete_update(self, run: RunRef, key: str, response: str) -> None: ...

    async def lookup_update(self, run: RunRef, key: str) -> AppendResult | None: ...

    async def trim_updates(self, run: RunRef, before: str) -> None: ...

    async def report_applied(self, run: RunRef, replica: str, applied_id: str) -> None:
        """Record how far ``replica`` has applied the log (a heartbeat, too)."""
        ...

    async def applied_floor(self, run: RunRef, max_age_s: float) -> str | None:
        """The lowest applied id among replicas heard from within ``max_age_s`` (None: none).

        The log may be trimmed only below it, so no live replica misses an entry.
        """
        ...

    async def prompt_stats(self, run: RunRef, hashes: list[str]) -> list[PromptStats | None]: ...

    async def cached_scores(
        self, run: RunRef, version: int, hashes: list[str]
    ) -> list[float | None]: ...

    async def cache_scores(
        self, run: RunRef, version: int, hashes: list[str], scores: list[float]
    ) -> None: ...

    async def create_run(
        self,
        run: RunRef,
        feature_width: int | None = None,
        stats: Mapping[str, PromptStats] | None = None,
        *,
        max_runs: int | None = None,
    ) -> bool:
        """Make ``run`` the current incarnation of its name, if the name has none (atomic:
        of two replicas creating one name, exactly one gets True); with ``feature_width``
        (kept with it in the same step) a feature run. ``stats``: per prompt hash, the
        statistics it starts with (a fork's, copied from its source), in place before the
        run is listed, so no update to it is counted without them. ``max_runs``: refused
        (``RunLimitError``) when the run list already holds that many runs, decided in the
        same atomic step, so replicas sharing the store cannot pass it together."""
        ...

    async def feature_width(self, run: RunRef) -> int | None:
        """The width ``run`` was created with (None: a text run, or not a current run)."""
        ...

    async def delete_run(self, run: RunRef) -> bool:
        """Remove ``run`` from the run list if it is still the current incarnation, and
        tombstone it, in one atomic step; from then on nothing can be appended to it. False:
        it was not current (deleted or replaced meanwhile), nothing done."""
        ...

    async def tombstones(self) -> list[RunRef]:
        """Deleted incarnations not yet collected (shared by every replica, and kept across
        restarts where the store is durable, so whoever can finishes the job)."""
        ...

    async def collect(self, run: RunRef) -> None:
        """Delete a tombstoned incarnation's state, then its tombstone. Called once its
        checkpoint files are gone, so the tombstone says what is left to remove."""
        ...

    async def list_runs(self) -> dict[str, str]:
        """Every run's name and current incarnation, ``default`` included."""
        ...

    async def current_incarnation(self, name: str) -> str | None:
        """``list_runs().get(name)`` in one small read: the run's current incarnation, or
        None when no run has that name (asked on every run-addressed request)."""
        ...

    async def close(self) -> None: ...
