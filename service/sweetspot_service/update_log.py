"""The durable update path: append → acknowledge after apply → checkpoint → replay.

``submit`` (called by ``/v1/update``) appends the update to the store's log together with its
idempotency record, in one atomic step, then waits until the applier has trained on it and
answers with the result. ``run_forever`` is the applier: for each run it reads the log after
the last applied entry and applies entries strictly in order on the model thread, then
checkpoints now and then (atomic file, see ``checkpoint.py``). After a crash the service
loads each run's checkpoint and replays the log after it, so an acknowledged update is never
lost and never applied twice, and the model version (= the log sequence number of the last
applied entry) never goes backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import time
from collections import defaultdict
from typing import TYPE_CHECKING

from sweetspot_client.schema import UpdateRequest, UpdateResponse
from sweetspot_service.checkpoint import load_checkpoint, newest_version, save_checkpoint
from sweetspot_service.core.errors import (
    IdempotencyConflictError,
    RunFailedError,
    StoreDownError,
    UpdatePendingError,
)
from sweetspot_service.runs import Run
from sweetspot_service.store import (
    LogEntry,
    StatsDelta,
    StoreUnavailableError,
    entry_key,
    prompt_hash,
)

if TYPE_CHECKING:
    from sweetspot_service.runtime import Runtime

logger = logging.getLogger(__name__)
_READ_BATCH = 32


def encode_update(prompts: list[str], rewards: list[list[float]], steps: int) -> str:
    """The log entry's body: canonical JSON, so equal requests have equal digests."""
    return json.dumps(
        {"prompts": prompts, "rewards": rewards, "steps": steps},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def stats_deltas(prompts: list[str], rewards: list[list[float]]) -> list[StatsDelta]:
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for prompt, observed in zip(prompts, rewards, strict=True):
        total = totals[prompt_hash(prompt)]
        total[0] += len(observed)
        total[1] += math.fsum(observed)
    return [StatsDelta(h, int(c), s) for h, (c, s) in totals.items()]


class UpdateLog:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
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
        body = encode_update(prompts, rewards, steps)
        digest = hashlib.sha256(body.encode()).hexdigest()
        deltas = stats_deltas(prompts, rewards)
        try:
            result = await self.runtime.store.append_update(run.name, key, digest, body, deltas)
        except StoreUnavailableError as exc:
            self.runtime.metrics.store_errors.labels("append").inc()
            raise StoreDownError(f"update not accepted, retry: {exc}") from exc
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
            return await self.runtime.drain.wait_for(future, self.runtime.settings.update_timeout_s)
        except TimeoutError:
            why = "the service is shutting down" if self.runtime.drain.begun else "not applied yet"
            raise UpdatePendingError(
                f"update accepted as log entry {entry_id}, {why}; retry with the same "
                f"Idempotency-Key ({key}) to get its result (it is applied once)"
            ) from None

    async def run_forever(self) -> None:
        """Apply every run's new log entries, forever; back off while the store is down."""
        settings = self.runtime.settings
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), settings.log_poll_interval_s)
            self.wake.clear()
            try:
                await self.runtime.sync_runs()
                await self.apply_all()
                await self.checkpoint_due()
            except StoreUnavailableError as exc:
                self.runtime.metrics.store_errors.labels("apply").inc()
                logger.warning("applier waiting for the store: %s", exc)
                await asyncio.sleep(settings.log_poll_interval_s)
            except Exception:
                logger.exception("applier error; retrying")
                await asyncio.sleep(settings.log_poll_interval_s)

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def apply_all(self) -> int:
        applied = 0
        for run in list(self.runtime.runs.values()):
            applied += await self.apply_pending(run)
        return applied

    async def apply_pending(self, run: Run) -> int:
        """Apply ``run``'s log after its last applied entry; returns how many were applied."""
        async with self.lock:
            return await self._apply_pending(run)

    async def _apply_pending(self, run: Run) -> int:
        store = self.runtime.store
        await self._record_missed(run)
        applied = 0
        while not run.error:
            entries = await store.read_updates(run.name, run.applied_id, _READ_BATCH)
            if not entries:
                break
            for entry in entries:
                if self.runtime.runs.get(run.name) is not run:
                    return applied  # deleted meanwhile
                if entry.seq > run.model.version + 1 and await self._catch_up(run, entry.seq - 1):
                    break  # now at a newer checkpoint: read the log after it
                await self._apply(run, entry)
                applied += 1
        if store.kind == "memory":
            if applied and self.runtime.settings.checkpoint_dir is None:
                await store.trim_updates(run.name, run.applied_id)  # nothing would replay it
        else:  # a heartbeat with our position: trimming waits for the slowest live replica
            await store.report_applied(run.name, self.runtime.replica_id, run.applied_id)
        return applied

    async def _catch_up(self, run: Run, needed: int) -> bool:
        """Load a checkpoint at version >= ``needed`` when the log before it is gone.

        That happens to a replica away for longer than ``replica_ttl_s`` (or restarted from
        an old checkpoint) while another one checkpointed and trimmed the log: with the
        checkpoint directory shared between replicas, it continues from the newest
        checkpoint instead of failing the run. True when it did.
        """
        directory = self.runtime.settings.checkpoint_dir
        if directory is None:
            return False
        newest = await asyncio.to_thread(newest_version, directory, run.name)
        if newest is None or newest < needed:
            return False
        restored = await asyncio.to_thread(load_checkpoint, directory, run.name)
        if restored is None:
            return False
        state, applied_id = restored
        if int(state["version"]) < needed:
            return False
        before = run.model.version
        await self.runtime.run_model(run.model.load_state, state)
        run.applied_id = applied_id
        run.checkpointed_version = run.model.version
        run.last_seq = max(run.last_seq, run.model.version)
        self.runtime.metrics.model_version.labels(run.name).set(run.model.version)
        logger.warning(
            "run %s: the update log after version %d was trimmed while this replica was "
            "away; continued from the shared checkpoint at version %d",
            run.name,
            before,
            run.model.version,
        )
        return True

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
        prompts = list(update.prompts)
        assert update.steps is not None  # encode_update always writes the resolved steps
        stats = await self.runtime.run_model(
            run.model.update, prompts, update.targets(), update.steps
        )
        run.applied_id = entry.entry_id
        run.last_seq = max(run.last_seq, entry.seq)
        m = self.runtime.metrics
        m.updates.labels(run.name).inc()
        m.update_loss.labels(run.name).set(stats.loss)
        m.model_version.labels(run.name).set(stats.version)
        for error in stats.abs_errors_before:
            m.prediction_abs_error.observe(error)
        response = UpdateResponse(
            model_version=stats.version,
            loss=stats.loss,
            mse_before=stats.mse_before,
            mae_before=stats.mae_before,
            num_prompts=len(prompts),
            run=run.name,
        )
        run.resolve(entry.entry_id, response)
        run.unrecorded.append((entry.key, response.model_dump_json()))
        await self._record_missed(run)

    async def _record_missed(self, run: Run) -> None:
        """Store applied updates' responses (for retries); keep them if the store is down."""
        while run.unrecorded:
            key, response = run.unrecorded[0]
            try:
                await self.runtime.store.complete_update(run.name, key, response)
            except StoreUnavailableError:
                self.runtime.metrics.store_errors.labels("complete").inc()
                return
            run.unrecorded.pop(0)

    async def checkpoint_due(self, *, force: bool = False) -> None:
        settings = self.runtime.settings
        if settings.checkpoint_dir is None:
            return
        async with self.lock:
            await self._checkpoint_due(force)

    async def _checkpoint_due(self, force: bool) -> None:
        settings = self.runtime.settings
        now = time.monotonic()
        for run in list(self.runtime.runs.values()):
            behind = run.version - run.checkpointed_version
            due = behind >= settings.checkpoint_every or (
                behind > 0 and now - run.last_checkpoint >= settings.checkpoint_interval_s
            )
            if (due or (force and behind > 0)) and not run.unrecorded and not run.error:
                await self.checkpoint(run)

    async def checkpoint(self, run: Run) -> None:
        """Write the run's checkpoint, then drop the log entries it makes unnecessary.

        The caller holds ``lock``, so the state and ``applied_id`` belong together.
        """
        directory = self.runtime.settings.checkpoint_dir
        assert directory is not None
        applied_id = run.applied_id
        start = time.perf_counter()
        state = await self.runtime.run_model(run.model.state)
        await asyncio.to_thread(save_checkpoint, directory, run.name, state, applied_id)
        run.checkpointed_version = int(state["version"])
        run.last_checkpoint = time.monotonic()
        self.runtime.metrics.checkpoint_seconds.observe(time.perf_counter() - start)
        store = self.runtime.store
        floor = await store.applied_floor(run.name, self.runtime.settings.replica_ttl_s)
        if floor is not None and entry_key(floor) < entry_key(applied_id):
            applied_id = floor  # another replica still needs these entries
        await store.trim_updates(run.name, applied_id)
