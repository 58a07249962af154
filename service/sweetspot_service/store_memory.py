"""``InMemoryStore``: the embedded default. Same semantics as Redis, nothing survives the process.

Each run's state belongs to one incarnation (``RunRef``): deleting the run drops it at once
(``collect`` only drops the tombstone), and a call naming an incarnation that is not
current finds nothing and writes nothing.

Everything runs on the event loop's thread, so no locks are needed; every collection is
bounded (oldest entries dropped first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from sweetspot_client.schema import DEFAULT_RUN
from sweetspot_service.store import (
    LEGACY,
    AppendResult,
    LogEntry,
    PromptStats,
    RunLimitError,
    RunRef,
    StatsDelta,
    entry_key,
    first_seen_flags,
)


def _entry_id(seq: int) -> str:
    """Ids shaped like Redis stream ids (``entry_key`` orders both), one per sequence number."""
    return f"0-{seq}"


@dataclass
class _Record:
    digest: str
    entry_id: str
    seq: int
    expires: float
    response: str | None = None


@dataclass
class _RunState:
    incarnation: str = LEGACY
    feature_width: int | None = None
    seq: int = 0
    log: list[LogEntry] = field(default_factory=list)
    records: OrderedDict[str, _Record] = field(default_factory=OrderedDict)
    stats: OrderedDict[str, PromptStats] = field(default_factory=OrderedDict)
    applied: dict[str, tuple[str, float]] = field(default_factory=dict)
    score_version: int = -1
    scores: dict[str, float] = field(default_factory=dict)
    leases: dict[str, float] = field(default_factory=dict)
    """Prompt hash → when its lease ends (``time.monotonic``)."""


class InMemoryStore:
    kind = "memory"

    def __init__(
        self,
        *,
        idempotency_ttl_s: float = 86_400.0,
        max_records: int = 100_000,
        max_prompts: int = 1_000_000,
        max_cached_scores: int = 100_000,
    ) -> None:
        self._runs: dict[str, _RunState] = {DEFAULT_RUN: _RunState()}
        self._gone = _RunState()  # what a call on a non-current incarnation sees: nothing
        self._tombstones: set[RunRef] = set()
        self._ttl = idempotency_ttl_s
        self._max_records = max_records
        self._max_prompts = max_prompts
        self._max_scores = max_cached_scores

    def _run(self, run: RunRef) -> _RunState:
        """The incarnation's state; for one that is not current, an empty throwaway."""
        state = self._runs.get(run.name)
        if state is None or state.incarnation != run.incarnation:
            self._gone = _RunState()
            return self._gone
        return state

    def _current(self, run: RunRef) -> bool:
        state = self._runs.get(run.name)
        return state is not None and state.incarnation == run.incarnation

    async def ping(self) -> None:
        return None

    async def durability_warning(self) -> str | None:
        return None  # nothing is durable, by design: the embedded default

    async def append_update(
        self, run: RunRef, key: str, digest: str, body: str, stats: list[StatsDelta]
    ) -> AppendResult:
        if not self._current(run):
            return AppendResult("gone", "", 0)
        state = self._run(run)
        now = time.monotonic()
        record = state.records.get(key)
        if record is not None and record.expires > now:
            if record.digest != digest:
                return AppendResult("conflict", record.entry_id, record.seq)
            return AppendResult("duplicate", record.entry_id, record.seq, record.response)
        state.seq += 1
        entry_id = _entry_id(state.seq)
        state.records.pop(key, None)
        state.records[key] = _Record(digest, entry_id, state.seq, now + self._ttl)
        while len(state.records) > self._max_records:
            state.records.popitem(last=False)
        before: list[int] = []
        for delta in stats:
            old = state.stats.pop(delta.prompt_hash, None) or PromptStats()
            before.append(old.count)
            state.stats[delta.prompt_hash] = PromptStats(
                old.count + delta.count, old.reward_sum + delta.reward_sum, state.seq
            )
        while len(state.stats) > self._max_prompts:
            state.stats.popitem(last=False)
        state.log.append(LogEntry(entry_id, state.seq, key, body, first_seen_flags(before)))
        return AppendResult("new", entry_id, state.seq)

    async def acquire_leases(
        self, run: RunRef, hashes: list[str], want: int, ttl_s: float
    ) -> list[int]:
        leases, now = self._run(run).leases, time.monotonic()  # no await below: atomic
        for h in [h for h, end in leases.items() if end <= now]:
            del leases[h]
        taken: list[int] = []
        for i, h in enumerate(hashes):
            if len(taken) == want:
                break
            if h not in leases:
                leases[h] = now + ttl_s
                taken.append(i)
        return taken

    async def release_leases(self, run: RunRef, hashes: list[str]) -> None:
        leases = self._run(run).leases
        for h in hashes:
            leases.pop(h, None)

    async def read_updates(self, run: RunRef, after: str, count: int) -> list[LogEntry]:
        floor = entry_key(after)
        return [e for e in self._run(run).log if entry_key(e.entry_id) > floor][:count]

    async def resume_log(self, run: RunRef, version: int, applied_id: str) -> str:
        state = self._run(run)
        state.seq = max(state.seq, version)
        return _entry_id(version)

    async def log_length(self, run: RunRef) -> int:
        return len(self._run(run).log)

    async def complete_update(self, run: RunRef, key: str, response: str) -> None:
        record = self._run(run).records.get(key)
        if record is not None and record.response is None:
            record.response = response

    async def lookup_update(self, run: RunRef, key: str) -> AppendResult | None:
        record = self._run(run).records.get(key)
        if record is None or record.expires <= time.monotonic():
            return None
        return AppendResult("duplicate", record.entry_id, record.seq, record.response)

    async def trim_updates(self, run: RunRef, before: str) -> None:
        floor = entry_key(before)
        state = self._run(run)
        state.log = [e for e in state.log if entry_key(e.entry_id) >= floor]

    async def report_applied(self, run: RunRef, replica: str, applied_id: str) -> None:
        self._run(run).applied[replica] = (applied_id, time.monotonic())

    async def applied_floor(self, run: RunRef, max_age_s: float) -> str | None:
        now = time.monotonic()
        live = [i for i, seen in self._run(run).applied.values() if now - seen <= max_age_s]
        return min(live, key=entry_key) if live else None

    async def prompt_stats(self, run: RunRef, hashes: list[str]) -> list[PromptStats | None]:
        stats = self._run(run).stats
        return [stats.get(h) for h in hashes]

    async def cached_scores(
        self, run: RunRef, version: int, hashes: list[str]
    ) -> list[float | None]:
        state = self._run(run)
        if state.score_version != version:
            return [None] * len(hashes)
        return [state.scores.get(h) for h in hashes]

    async def cache_scores(
        self, run: RunRef, version: int, hashes: list[str], scores: list[float]
    ) -> None:
        state = self._run(run)
        if version != state.score_version:
            if version < state.score_version:
                return
            state.score_version, state.scores = version, {}
        if len(state.scores) + len(hashes) <= self._max_scores:
            state.scores.update(zip(hashes, scores, strict=True))

    async def create_run(
        self,
        run: RunRef,
        feature_width: int | None = None,
        stats: Mapping[str, PromptStats] | None = None,
        *,
        max_runs: int | None = None,
    ) -> bool:
        if run.name in self._runs:
            return False
        if max_runs is not None and len(self._runs) >= max_runs:  # no await since the check
            raise RunLimitError(max_runs)
        state = _RunState(incarnation=run.incarnation, feature_width=feature_width)
        state.stats.update(list((stats or {}).items())[-self._max_prompts :])
        self._runs[run.name] = state
        return True

    async def feature_width(self, run: RunRef) -> int | None:
        return self._run(run).feature_width

    async def delete_run(self, run: RunRef) -> bool:
        if run.name == DEFAULT_RUN or not self._current(run):
            return False
        del self._runs[run.name]
        self._tombstones.add(run)
        return True

    async def tombstones(self) -> list[RunRef]:
        return sorted(self._tombstones)

    async def collect(self, run: RunRef) -> None:
        self._tombstones.discard(run)  # its state went with the delete

    async def list_runs(self) -> dict[str, str]:
        return {name: state.incarnation for name, state in sorted(self._runs.items())}

    async def current_incarnation(self, name: str) -> str | None:
        state = self._runs.get(name)
        return None if state is None else state.incarnation

    async def close(self) -> None:
        return None
