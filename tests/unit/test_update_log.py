"""The applier in-process: each log entry is applied exactly once, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sweetspot_service.core.config import Settings
from sweetspot_service.runtime import Runtime
from sweetspot_service.update_log import encode_update


async def _started(settings: Settings) -> Runtime:
    runtime = Runtime(settings)
    runtime.start()
    while runtime.status == "loading":
        await asyncio.sleep(0.01)
    assert runtime.status == "ok", runtime.error
    return runtime


def test_concurrent_appliers_apply_each_entry_once(tiny_llama: Path) -> None:
    async def scenario() -> None:
        runtime = await _started(Settings(backbone=str(tiny_llama), log_poll_interval_s=0.01))
        run = runtime.runs["default"]
        for i in range(6):
            body = encode_update([f"prompt {i}"], [[float(i % 2)]], 1)
            await runtime.store.append_update("default", f"k{i}", f"d{i}", body, [])
        # The background loop, plus two more appliers (a shutdown drain, a startup replay).
        await asyncio.gather(
            runtime.log.apply_pending(run), runtime.log.apply_all(), runtime.log.apply_all()
        )
        assert run.error is None
        assert run.version == 6 and run.applied_id == "0-6"
        await runtime.close()

    asyncio.run(scenario())


def test_a_gap_in_the_log_fails_the_run_instead_of_guessing(tiny_llama: Path) -> None:
    async def scenario() -> None:
        runtime = await _started(Settings(backbone=str(tiny_llama)))
        run = runtime.runs["default"]
        run.model.version = 3  # as if restored from a checkpoint the log does not continue
        body = encode_update(["p"], [[1.0]], 1)
        await runtime.store.append_update("default", "k", "d", body, [])
        await runtime.log.apply_pending(run)
        assert run.version == 3
        assert run.error is not None and "disagree" in run.error
        await runtime.close()

    asyncio.run(scenario())
