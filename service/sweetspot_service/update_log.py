"""The durable update path: append → acknowledge after apply → checkpoint → replay.

``submit`` (called by ``/v1/update``) appends the update to the store's log together with its
idempotency record, in one atomic step, then waits until the applier has trained on it and
answers with the result. ``run_forever`` is the applier: for each run in turn it reads the log
after the last applied entry and applies a bounded batch of entries strictly in order on the
model thread, then checkpoints what is due (atomic file, see ``checkpoint.py``), and starts
over. After a crash the service loads each run's checkpoint and replays the log after it, so
an acknowledged update is never lost and never applied twice, and the model version (= the
log sequence number of the last applied entry) never goes backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import time
from collections import defaultdict

from sweetspot_client.schema import GroupVersions, UpdateRequest, UpdateResponse
from sweetspot_service.checkpointing import catch_up, checkpoint_is_due, checkpoint_or_report
from sweetspot_service.core.errors import (
    IdempotencyConflictError,
    RunFailedError,
    RunNotFoundError,
    StoreDownError,
    UpdateOutcomeUnknownError,
    UpdatePendingError,
)
from sweetspot_service.log_host import LogHost
from sweetspot_service.runs import Run
from sweetspot_service.store import (
    LogEntry,
    StatsDelta,
    StoreUnavailableError,
    prompt_hash,
)

logger = logging.getLogger(__name__)
_READ_BATCH = 32
ENTRIES_PER_PASS = 8
"""Entries of one run the applier applies before it turns to the next run (fairness)."""


VERSION_FIELDS = ("version_start", "version_end", "selected_version", "fate", "groups")
"""``UpdateRequest`` fields about policy versions, kept in the log body when sent."""


def encode_update(
    prompts: list[str],
    rewards: list[list[float]],
    steps: int,
    features: list[list[float]] | None = None,
    versions: dict[str, object] | None = None,
) -> str:
    """The log entry's body: canonical JSON, so equal requests have equal digests. A feature
    run's vectors are part of it (so replay and every replica learn from the same numbers,
    and the idempotency digest covers them); a text run's body has no ``features`` key, as
    before feature runs existed. Likewise the policy-version fields (``versions``, from
    ``version_fields``) only when the report sent them."""
    body: dict[str, object] = {"prompts": prompts, "rewards": rewards, "steps": steps}
    if features is not None:
        body["features"] = features
    body |= versions or {}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def version_fields(request: UpdateRequest) -> dict[str, object]:
    """The report's policy-version fields as sent (none: an empty dict), in field order."""
    out: dict[str, object] = {}
    for name in VERSION_FIELDS:
        value = getattr(request, name)
        if name == "groups" and value is not None:
            value = [None if g is None else g.model_dump(exclude_none=True) for g in value]
        if value is not None:
            out[name] = value
    return out


def learned_rows(request: UpdateRequest) -> list[int]:
    """Positions of the groups the value model learns from: all but the 'failed' ones."""
    return [i for i, g in enumerate(request.resolved_groups()) if g.fate != "failed"]


def generation_versions(groups: list[GroupVersions]) -> list[float] | None:
    """Each group's generation version, the midpoint of its start and end (a group made
    while the weights moved samples their mixture); None when the report has none."""
    if groups[0].version_start is None:
        return None
    return [(g.version_start + g.version_end) / 2 for g in groups]  # type: ignore[operator]


def stats_deltas(prompts: list[str], rewards: list[list[float]]) -> list[StatsDelta]:
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for prompt, observed in zip(prompts, rewards, strict=True):
        total = totals[prompt_hash(prompt)]
        total[0] += len(observed)
        total[1] += math.fsum(observed)
    return [StatsDelta(h, int(c), s) for h, (c, s) in totals.items()]


def first_seen(prompts: list[str], flags: str | None) -> list[bool | None]:
    """Per prompt: whether its statistics had count 0 before this entry was appended.

    ``flags`` is ``LogEntry.first_seen``, one character per ``stats_deltas`` item (distinct
    prompts in order of first occurrence); None when the entry does not say.
    """
    hashes = list(dict.fromkeys(prompt_hash(p) for p in prompts))
    if flags is None or len(flags) != len(hashes):
        return [None] * len(prompts)
    fresh = {h: flag == "1" for h, flag in zip(hashes, flags, strict=True)}
    return [fresh[prompt_hash(p)] for p in prompts]


def _encoded(
    prompts: list[str], rewards: list[list[float]], steps: int, request: UpdateRequest
) -> tuple[str, str]:
    body = encode_update(prompts, rewards, steps, request.features, version_fields(request))
    return body, hashlib.sha256(body.encode()).hexdigest()


def _unfit(run: Run, entry: LogEntry, update: UpdateRequest) -> str | None:
    """Why a log entry's features cannot be applied to ``run``, if they cannot. The route
    admits only fitting ones (``deps.admit_features``), so this is a log written for another
    run of the name: fail the run rather than retry the entry forever."""
    width = run.feature_width
    got = None if update.features is None else len(update.features[0])
    if got == width:
        return None
    said = "no features" if got is None else f"features of width {got}"
    kind = "a text run" if width is None else f"a feature run of width {width}"
    return (
        f"run {run.name!r}: update log entry {entry.entry_id} carries {said}, but the run is "
        f"{kind}; the log and the run disagree: delete the run"
    )


DIVERGED_WAY_OUT = (
    "restart the service with a lower --head-lr (or --backbone-lr): the run comes back from "
    "its last checkpoint and the updates its store still holds, applied at the new rate"
)
"""What works for a diverged run, the default one included (which cannot be deleted, and a
run deleted and created again on the same service would train at the same rate). A failed
run is never checkpointed, so its last checkpoint predates the divergence."""

BROKEN_WAY_OUT = (
    "delete the run (DELETE /v1/runs/<name>) and create it again; for the default run, "
    "which cannot be deleted, remove its bad update log entry from the store and restart"
)
"""What works for a run whose update raised: replaying the same log would raise again."""


class UpdateLog:
    def __init__(self, host: LogHost) -> None:
        self.host = host
        self.wake = asyncio.Event()
        self._stopping = False
        # One applier at a time: the background loop, the startup replay, the shutdown drain,
        # checkpoints and run deletion all take it, so no entry is ever applied twice.
        self.lock = asyncio.Lock()

    async def submit(
        self, run: Run, key: str, request: UpdateRequest, steps: int
    ) -> UpdateResponse:
        if run.error:
            raise RunFailedError(run.error)
        prompts, rewards = list(request.prompts), [list(r) for r in request.rewards]
        if request.features is None:
            body = encode_update(prompts, rewards, steps, versions=version_fields(request))
            digest = hashlib.sha256(body.encode()).hexdigest()
        else:  # up to max_feature_values numbers: encode off the event loop
            body, digest = await asyncio.to_thread(_encoded, prompts, rewards, steps, request)
        kept = learned_rows(request)  # failed groups are logged, not counted
        deltas = stats_deltas([prompts[i] for i in kept], [rewards[i] for i in kept])
        try:
            result = await self.host.store.append_update(run.ref, key, digest, body, deltas)
        except StoreUnavailableError as exc:
            self.host.metrics.store_errors.labels("append").inc()
            if exc.outcome_unknown:
                raise UpdateOutcomeUnknownError(
                    "update outcome unknown: it reached the store but no answer came back, so "
                    f"it may have been accepted; retry with the same Idempotency-Key ({key}), "
                    f"which applies it at most once and returns its result ({exc})"
                ) from exc
            raise StoreDownError(
                f"update not accepted: the store could not be reached and nothing was sent "
                f"({exc}); retry (with Idempotency-Key {key} or a new one)"
            ) from exc
        if result.status == "gone":
            raise RunNotFoundError(
                f"update not accepted: run {run.name!r} was deleted (or deleted and created "
                "again) through another replica; nothing was written"
            )
        if result.status == "conflict":
            raise IdempotencyConflictError(
                f"Idempotency-Key {key!r} was already used for a different update body; "
                "send a new key for each distinct update"
            )
        if result.response:
            return UpdateResponse.model_validate_json(result.response)
        run.last_seq = max(run.last_seq, result.seq)
        self.wake.set()
        return await self._result(run, result.entry_id, key)

    async def _result(self, run: Run, entry_id: str, key: str) -> UpdateResponse:
        if (done := run.results.get(entry_id)) is not None:
            return done
        future: asyncio.Future[UpdateResponse] = asyncio.get_running_loop().create_future()
        run.waiters.setdefault(entry_id, []).append(future)
        try:
            return await self.host.drain.wait_for(future, self.host.settings.update_timeout_s)
        except TimeoutError:
            why = "the service is shutting down" if self.host.drain.begun else "not applied yet"
            raise UpdatePendingError(
                f"update accepted as log entry {entry_id}, {why}; retry with the same "
                f"Idempotency-Key ({key}) to get its result (it is applied once)"
            ) from None

    async def run_forever(self) -> None:
        """Apply every run's new log entries, forever; back off while the store is down.

        Each pass applies at most ``ENTRIES_PER_PASS`` entries of each run, in turn, then
        writes the checkpoints that are due, and takes ``lock`` once per run: a run that
        always has more updates delays another run's update, a checkpoint or a run's
        creation or deletion by at most one such batch, never indefinitely.
        """
        settings = self.host.settings
        more = False
        while not self._stopping:
            if not more:  # a pass that stopped at the bound starts the next one at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), settings.log_poll_interval_s)
            self.wake.clear()
            more = False
            try:
                await self.host.sync_runs()
                more = await self.apply_all(limit=ENTRIES_PER_PASS) > 0
                await self.checkpoint_due()
            except StoreUnavailableError as exc:
                self.host.metrics.store_errors.labels("apply").inc()
                logger.warning("applier waiting for the store: %s", exc)
                await asyncio.sleep(settings.log_poll_interval_s)
            except Exception:
                logger.exception("applier error; retrying")
                await asyncio.sleep(settings.log_poll_interval_s)

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def apply_all(self, *, limit: int | None = None) -> int:
        """One pass over every run, at most ``limit`` entries each (None: all there are).

        Returns how many runs stopped at ``limit`` with entries possibly left.
        """
        at_limit = 0
        for run in list(self.host.runs.values()):
            applied = await self.apply_pending(run, limit=limit)
            at_limit += limit is not None and applied >= limit
        return at_limit

    async def apply_pending(self, run: Run, *, limit: int | None = None) -> int:
        """Apply ``run``'s log after its last applied entry, at most ``limit`` entries
        (None: until the log ends); returns how many were applied."""
        async with self.lock:
            try:
                return await self._apply_pending(run, limit)
            except StoreUnavailableError:
                raise  # the store is down, not the run: the caller waits and retries
            except Exception as exc:  # a log that cannot be read: this run fails, no other
                self._broken(run, "reading its update log", exc)
                return 0

    async def _apply_pending(self, run: Run, limit: int | None) -> int:
        store = self.host.store
        await self._record_missed(run)
        applied = 0
        while not run.error and (limit is None or applied < limit):
            count = _READ_BATCH if limit is None else min(_READ_BATCH, limit - applied)
            entries = await store.read_updates(run.ref, run.applied_id, count)
            if not entries:
                break
            for entry in entries:
                if self.host.runs.get(run.name) is not run:
                    return applied  # deleted meanwhile
                if entry.seq > run.model.version + 1 and await catch_up(
                    self.host, run, entry.seq - 1
                ):
                    break  # now at a newer checkpoint: read the log after it
                try:
                    await self._apply(run, entry)
                except StoreUnavailableError:
                    raise
                except Exception as exc:  # a bad entry, or a state it breaks: this run only
                    self._broken(run, f"applying update log entry {entry.entry_id}", exc)
                if run.error:
                    break
                applied += 1
        if store.kind == "memory":
            if applied and self.host.settings.checkpoint_dir is None:
                await store.trim_updates(run.ref, run.applied_id)  # nothing would replay it
        else:  # a heartbeat with our position: trimming waits for the slowest live replica
            await store.report_applied(run.ref, self.host.replica_id, run.applied_id)
        return applied

    async def _apply(self, run: Run, entry: LogEntry) -> None:
        expected = run.model.version + 1
        if entry.seq != expected:
            run.error = (
                f"run {run.name!r}: update log entry {entry.entry_id} has sequence number "
                f"{entry.seq} but the model is at version {run.model.version}; the log and "
                "the checkpoint disagree (was Redis reset, the checkpoint copied from "
                "elsewhere, or this replica away while another trimmed the log? replicas "
                "that share --checkpoint-dir continue from the newest checkpoint): restore "
                "them together, or delete the run"
            )
            logger.error(run.error)
            run.fail_waiters(RunFailedError(run.error))
            return
        update = UpdateRequest.model_validate_json(entry.body)  # {prompts, rewards, steps}
        assert update.steps is not None  # encode_update always writes the resolved steps
        if (unfit := _unfit(run, entry, update)) is not None:
            run.fail(unfit)
            logger.error(unfit)
            run.fail_waiters(RunFailedError(unfit))
            return
        kept = learned_rows(update)
        resolved, means = update.resolved_groups(), update.targets()
        groups = [resolved[i] for i in kept]
        prompts = [update.prompts[i] for i in kept]
        targets = [means[i] for i in kept]
        counts = [len(update.rewards[i]) for i in kept]
        features = None if update.features is None else [update.features[i] for i in kept]
        selected = [math.nan if g.selected_version is None else g.selected_version for g in groups]
        stats = await self.host.run_model(
            functools.partial(
                run.model.update,
                prompts,
                targets,
                update.steps,
                counts,
                features,
                versions=generation_versions(groups),
                selected=selected,
                order=hashlib.sha256(entry.body.encode()).hexdigest(),
            )
        )
        run.applied_id = entry.entry_id
        run.last_seq = max(run.last_seq, entry.seq)
        if not all(map(math.isfinite, [stats.loss, *stats.predictions_before])):
            self._diverged(run, entry, stats.loss)
            return
        m = self.host.metrics
        m.updates.labels(run.name).inc()
        for group in resolved:
            m.reported_groups.labels(run.name, group.fate).inc()
        m.policy_lag.labels(run.name).set(stats.lag)
        m.update_loss.labels(run.name).set(stats.loss)
        m.model_version.labels(run.name).set(stats.version)
        errors = m.prediction_abs_error.labels(run.name)
        for error in stats.abs_errors_before:
            errors.observe(error)
        run.calibration.add(
            stats.predictions_before,
            targets,
            first_seen(prompts, entry.first_seen),  # flags of the learned groups' deltas
            stats.uncertainty_before,
            version=stats.version,
        )
        response = UpdateResponse(
            model_version=stats.version,
            loss=stats.loss,
            mse_before=stats.mse_before,
            mae_before=stats.mae_before,
            num_prompts=len(prompts),
            run=run.name,
            policy_version=stats.policy_version,
            lag=stats.lag,
        )
        run.resolve(entry.entry_id, response)
        run.unrecorded.append((entry.key, response.model_dump_json()))
        await self._record_missed(run)

    def _broken(self, run: Run, doing: str, exc: Exception) -> None:
        """An update that raises fails its own run, never the applier (which would stop
        every run after it) nor the startup replay (which would fail the service). Its
        model may be half-updated, so it serves nothing until deleted."""
        why = f"{type(exc).__name__}: {exc}"
        run.fail(
            f"run {run.name!r} failed {doing}: {why[:500]}; its model may be half-updated, "
            f"so it refuses scores and updates (the other runs are unaffected): {BROKEN_WAY_OUT}",
            unservable=True,
        )
        logger.exception(run.error)
        run.fail_waiters(RunFailedError(run.error or ""))

    def _diverged(self, run: Run, entry: LogEntry, loss: float) -> None:
        """A model with non-finite values serves nothing useful: fail the run, say why."""
        run.fail(
            f"run {run.name!r} diverged: applying update log entry {entry.entry_id} (version "
            f"{entry.seq}) gave a non-finite loss or prediction (loss {loss}); the learning "
            f"rate is too high for this model: {DIVERGED_WAY_OUT}",
            unservable=True,
        )
        logger.error(run.error)
        run.fail_waiters(RunFailedError(run.error or ""))

    async def _record_missed(self, run: Run) -> None:
        """Store applied updates' responses (for retries); keep them if the store is down."""
        while run.unrecorded:
            key, response = run.unrecorded[0]
            try:
                await self.host.store.complete_update(run.ref, key, response)
            except StoreUnavailableError:
                self.host.metrics.store_errors.labels("complete").inc()
                return
            run.unrecorded.pop(0)

    async def checkpoint_due(self, *, force: bool = False) -> None:
        """Checkpoint every run that is due (``force``: every run with unsaved updates)."""
        if self.host.settings.checkpoint_dir is None:
            return
        async with self.lock:
            now = time.monotonic()
            due = [
                run
                for run in self.host.runs.values()
                if checkpoint_is_due(self.host.settings, run, now, force=force)
            ]
            if not due:
                return
            current = await self.host.store.list_runs()  # never one of a deleted incarnation
            for run in due:
                if current.get(run.name) == run.incarnation:
                    await self.checkpoint(run)

    async def checkpoint(self, run: Run) -> None:
        """Checkpoint ``run`` now; the caller holds ``lock``. A write that fails is reported
        (``Run.checkpoint_error``, metrics, one log line per change), never raised."""
        await checkpoint_or_report(self.host, run)
