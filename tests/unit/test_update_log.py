"""The applier in-process: each log entry is applied exactly once, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sweetspot_client.schema import UpdateRequest
from sweetspot_service.core.config import Settings
from sweetspot_service.core.errors import ServiceError
from sweetspot_service.runs import Run
from sweetspot_service.runtime import Runtime
from sweetspot_service.store import (
    DEFAULT_REF,
    AppendResult,
    LogEntry,
    RunRef,
    StoreUnavailableError,
)
from sweetspot_service.update_log import ENTRIES_PER_PASS, encode_update


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
            await runtime.store.append_update(DEFAULT_REF, f"k{i}", f"d{i}", body, [])
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
        await runtime.store.append_update(DEFAULT_REF, "k", "d", body, [])
        await runtime.log.apply_pending(run)
        assert run.version == 3
        assert run.error is not None and "disagree" in run.error
        await runtime.close()

    asyncio.run(scenario())


def test_a_busy_run_starves_neither_other_runs_nor_checkpoints_nor_admin_calls(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """Issue 11.2: while one run always had more updates, another run's update waited,
    checkpoints were never written and a DELETE never got the applier's lock."""
    endless = 120  # "always more": the busy run's log refills whenever the applier reads it

    async def scenario() -> None:
        settings = Settings(backbone=str(tiny_llama), checkpoint_dir=tmp_path, checkpoint_every=5)
        runtime = await _started(settings)
        busy = await runtime.create_run("busy")
        await runtime.create_run("doomed")
        store = runtime.store
        read = store.read_updates
        appended = 0
        drained = asyncio.Event()

        async def refilling_read(run: RunRef, after: str, count: int) -> list[LogEntry]:
            nonlocal appended
            while run == busy.ref and appended < endless and appended - busy.version < count:
                appended += 1
                body = encode_update([f"busy {appended}"], [[1.0]], 1)
                await store.append_update(busy.ref, f"b{appended}", f"d{appended}", body, [])
            entries = await read(run, after, count)
            if run == busy.ref and not entries and appended == endless:
                drained.set()
            return entries

        checkpointed_at: list[int] = []
        checkpoint = runtime.log.checkpoint

        async def recording_checkpoint(run: Run) -> None:
            await checkpoint(run)
            if run is busy:
                checkpointed_at.append(run.checkpointed_version)

        store.read_updates = refilling_read  # type: ignore[method-assign]
        runtime.log.checkpoint = recording_checkpoint  # type: ignore[method-assign]
        runtime.log.wake.set()

        async def other_update() -> int:
            request = UpdateRequest(prompts=["other"], rewards=[[0.0]], run="other")
            await runtime.log.submit(await runtime.create_run("other"), "o1", request, 1)
            return busy.version

        async def delete() -> int:
            await runtime.delete_run("doomed")
            return busy.version

        busy_when_other_applied, busy_when_deleted = await asyncio.gather(other_update(), delete())
        assert busy_when_other_applied < endless
        assert busy_when_deleted < endless
        await drained.wait()  # the whole busy stretch: checkpoints kept their schedule
        await runtime.close()
        assert checkpointed_at and checkpointed_at[0] < endless
        gaps = [b - a for a, b in zip([0, *checkpointed_at], checkpointed_at, strict=False)]
        assert max(gaps) <= settings.checkpoint_every + ENTRIES_PER_PASS, checkpointed_at

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("outcome_unknown", "says", "never_says"),
    [(True, "outcome unknown", "not accepted"), (False, "not accepted", "unknown")],
)
def test_a_store_failure_during_append_says_whether_the_update_may_be_in(
    tiny_llama: Path, outcome_unknown: bool, says: str, never_says: str
) -> None:
    """Issue 11.6: "not accepted" only when the store certainly did not take the update."""

    async def scenario() -> None:
        runtime = await _started(Settings(backbone=str(tiny_llama)))
        failure = StoreUnavailableError("Redis unavailable: Timeout reading from socket")
        failure.outcome_unknown = outcome_unknown

        async def failing_append(*args: object) -> AppendResult:
            raise failure

        runtime.store.append_update = failing_append  # type: ignore[method-assign]
        request = UpdateRequest(prompts=["p"], rewards=[[1.0]])
        with pytest.raises(ServiceError) as answer:
            await runtime.log.submit(runtime.runs["default"], "key-7", request, 1)
        assert answer.value.status_code == 503
        assert answer.value.headers == {"Retry-After": "1"}
        assert says in answer.value.detail and never_says not in answer.value.detail
        assert "key-7" in answer.value.detail  # the key to retry with, even a generated one
        await runtime.close()

    asyncio.run(scenario())
