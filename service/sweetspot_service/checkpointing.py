"""Checkpointing runs while they serve: write one (then trim the log), and catch up from one.

The files themselves are ``checkpoint.py``'s; this module decides what goes in them and what
the update log may then forget. Callers hold ``UpdateLog.lock``, so a model's state and its
``applied_id`` always belong together.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sweetspot_service.checkpoint import load_checkpoint, newest_version, save_checkpoint
from sweetspot_service.log_host import LogHost
from sweetspot_service.runs import Run
from sweetspot_service.store import entry_key

logger = logging.getLogger(__name__)


async def write_checkpoint(host: LogHost, run: Run) -> None:
    """Write the run's checkpoint, then drop the log entries it makes unnecessary."""
    directory = host.settings.checkpoint_dir
    assert directory is not None
    applied_id = run.applied_id
    start = time.perf_counter()
    state = await host.run_model(run.model.state)
    await asyncio.to_thread(save_checkpoint, directory, run.name, state, applied_id)
    run.checkpointed_version = int(state["version"])
    run.last_checkpoint = time.monotonic()
    host.metrics.checkpoint_seconds.observe(time.perf_counter() - start)
    floor = await host.store.applied_floor(run.name, host.settings.replica_ttl_s)
    if floor is not None and entry_key(floor) < entry_key(applied_id):
        applied_id = floor  # another replica still needs these entries
    await host.store.trim_updates(run.name, applied_id)


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
    await host.run_model(run.model.load_state, state)
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
