"""Checkpointing runs while they serve: when, writing one (then trimming the log), what a
failed write means, and catching up from one.

The files themselves are ``checkpoint.py``'s; this module decides what goes in them and what
the update log may then forget. Callers hold ``UpdateLog.lock``, so a model's state and its
``applied_id`` always belong together.

A write that fails (disk full, folder gone or read-only) loses nothing: the log is trimmed
only after a checkpoint is written, so every update stays in the log and the run keeps
serving and applying updates. The failure is kept in ``Run.checkpoint_error`` (``/readyz``
lists it, ``sweetspot_checkpoint_failing_runs`` counts such runs), counted in
``sweetspot_checkpoint_errors_total``, logged when it starts and when it ends, and retried
after ``checkpoint_interval_s`` rather than on every pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sweetspot_service.checkpoint import (
    CheckpointLoadError,
    load_checkpoint,
    newest_version,
    remove_checkpoint,
    save_checkpoint,
)
from sweetspot_service.core.config import Settings
from sweetspot_service.log_host import LogHost
from sweetspot_service.runs import Run
from sweetspot_service.store import entry_key

logger = logging.getLogger(__name__)


class CheckpointWriteError(Exception):
    """The checkpoint file could not be written; nothing was trimmed."""


def checkpoint_is_due(settings: Settings, run: Run, now: float, *, force: bool) -> bool:
    """Due after ``checkpoint_every`` updates or ``checkpoint_interval_s`` with unsaved ones;
    after a failed write, not again before ``checkpoint_interval_s`` (unless ``force``)."""
    behind = run.version - run.checkpointed_version
    if behind <= 0 or run.unrecorded or run.error:
        return False
    waited = now - run.last_checkpoint >= settings.checkpoint_interval_s
    if force or waited:
        return True
    return behind >= settings.checkpoint_every and run.checkpoint_error is None


async def checkpoint_or_report(host: LogHost, run: Run) -> None:
    """``write_checkpoint``, turning a failed write into the run's reported state."""
    try:
        await write_checkpoint(host, run)
    except CheckpointWriteError as exc:
        host.metrics.checkpoint_errors.inc()
        run.last_checkpoint = time.monotonic()  # the next try waits checkpoint_interval_s
        if run.checkpoint_error is None:
            logger.error(
                "run %s: %s; its updates are still applied and kept in the update log "
                "(not trimmed), retrying every %gs: free space or fix --checkpoint-dir",
                run.name,
                exc,
                host.settings.checkpoint_interval_s,
            )
        run.checkpoint_error = str(exc)
        return
    if run.checkpoint_error is not None:
        logger.warning("run %s: checkpoints are written again (version %d)", run.name, run.version)
        run.checkpoint_error = None


async def write_checkpoint(host: LogHost, run: Run) -> None:
    """Write the run's checkpoint, then drop the log entries it makes unnecessary.

    ``CheckpointWriteError`` when the file could not be written (the log is then kept).
    """
    directory = host.settings.checkpoint_dir
    assert directory is not None
    applied_id = run.applied_id
    start = time.perf_counter()
    state = await host.run_model(run.model.state)
    state["calibration"] = run.calibration.state()  # a function of the same log prefix
    try:
        await asyncio.to_thread(
            save_checkpoint, directory, run.name, state, applied_id, run.incarnation
        )
    except Exception as exc:  # OSError mostly; torch wraps some write errors in RuntimeError
        raise CheckpointWriteError(
            f"checkpoint at version {state['version']} not written to {directory}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if await host.store.current_incarnation(run.name) != run.incarnation:
        # Deleted while we wrote (the caller checked before): take back what we wrote.
        with contextlib.suppress(OSError):  # else the deleting replica's retries remove it
            await asyncio.to_thread(remove_checkpoint, directory, run.name, run.incarnation)
        return
    run.checkpointed_version = int(state["version"])
    run.last_checkpoint = time.monotonic()
    host.metrics.checkpoint_seconds.observe(time.perf_counter() - start)
    floor = await host.store.applied_floor(run.ref, host.settings.replica_ttl_s)
    if floor is not None and entry_key(floor) < entry_key(applied_id):
        applied_id = floor  # another replica still needs these entries
    await host.store.trim_updates(run.ref, applied_id)


async def catch_up(host: LogHost, run: Run, needed: int) -> bool:
    """Load a checkpoint at version >= ``needed`` when the log before it is gone.

    That happens to a replica away for longer than ``replica_ttl_s`` (or restarted from an
    old checkpoint) while another one checkpointed and trimmed the log: with the checkpoint
    directory shared between replicas, it continues from the newest checkpoint instead of
    failing the run. True when it did.
    """
    directory = host.settings.checkpoint_dir
    if directory is None:
        return False
    newest = await asyncio.to_thread(newest_version, directory, run.name, run.incarnation)
    if newest is None or newest < needed:
        return False
    try:
        restored = await asyncio.to_thread(load_checkpoint, directory, run.name, run.incarnation)
    except CheckpointLoadError as exc:
        logger.error("run %s: cannot catch up from the shared checkpoint: %s", run.name, exc)
        return False
    if restored is None:
        return False
    state, applied_id = restored
    if int(state["version"]) < needed:
        return False
    before = run.model.version
    await host.run_model(run.model.load_state, state)
    run.calibration.load_state(state.get("calibration"), run.model.version)
    run.applied_id = applied_id
    run.checkpointed_version = run.model.version
    run.last_seq = max(run.last_seq, run.model.version)
    host.metrics.model_version.labels(run.name).set(run.model.version)
    logger.warning(
        "run %s: the update log after version %d was trimmed while this replica was away; "
        "continued from the shared checkpoint at version %d",
        run.name,
        before,
        run.model.version,
    )
    return True
