"""Dynamic batching of concurrent score requests.

Requests put their prompts on a queue and await a future. One batcher task takes the first
waiting request, gathers whatever else arrives within ``max_wait_s`` (up to ``max_prompts``
prompts), and runs one ``predict`` per run on the model thread, where the backbone sorts the
prompts by length into micro-batches. While the model thread is busy, new requests pile up
and go in the next batch, so under load batches grow without any added wait. The queue
itself is bounded at the edge (``AdmissionMiddleware`` answers 429 before a body is read).

A request larger than one forward call (``max_prompts`` prompts or ``max_chars`` characters)
is queued in parts, one after the other, so requests that arrive meanwhile go between its
parts: one select of 1,024 long prompts used to hold every other score for its whole
forward pass (issue 19.7). The parts must agree on the model version; when an update lands
between them the request is scored again, and after ``SPLIT_ATTEMPTS`` such tries in one
piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sweetspot_service.runs import Run
from sweetspot_service.value_model import Scored

logger = logging.getLogger(__name__)
SPLIT_ATTEMPTS = 3


@dataclass
class _Job:
    run: Run
    prompts: list[str]
    future: asyncio.Future[tuple[list[Scored], int]] = field(repr=False)


class ScoreBatcher:
    def __init__(
        self,
        run_model: Callable[..., Awaitable[tuple[list[Scored], int]]],
        *,
        max_prompts: int,
        max_wait_s: float,
        max_chars: int | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self._run_model = run_model
        self._max_prompts = max_prompts
        self._max_chars = max_chars
        self._max_wait = max_wait_s
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sweetspot-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def predict(self, run: Run, prompts: list[str]) -> tuple[list[Scored], int]:
        """Scores of ``prompts`` at one model version, in parts when they exceed one call."""
        parts = self.split(prompts)
        if len(parts) == 1:
            return await self._queued(run, prompts)
        for _ in range(SPLIT_ATTEMPTS):
            scored: list[Scored] = []
            versions = set()
            for part in parts:
                part_scores, version = await self._queued(run, part)
                scored += part_scores
                versions.add(version)
            if len(versions) == 1:
                return scored, versions.pop()
        return await self._queued(run, prompts)  # updates keep landing: one call, one version

    def split(self, prompts: list[str]) -> list[list[str]]:
        """Consecutive parts of at most ``max_prompts`` prompts and ``max_chars`` characters
        (a longer prompt is a part of its own)."""
        parts: list[list[str]] = [[]]
        chars = 0
        for prompt in prompts:
            full = len(parts[-1]) >= self._max_prompts
            if self._max_chars is not None and parts[-1]:
                full = full or chars + len(prompt) > self._max_chars
            if full:
                parts.append([])
                chars = 0
            parts[-1].append(prompt)
            chars += len(prompt)
        return parts

    async def _queued(self, run: Run, prompts: list[str]) -> tuple[list[Scored], int]:
        future: asyncio.Future[tuple[list[Scored], int]] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put(_Job(run, prompts, future))
        return await future

    async def _loop(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].prompts)
            deadline = time.monotonic() + self._max_wait
            while size < self._max_prompts:
                try:
                    job = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                jobs.append(job)
                size += len(job.prompts)
            try:
                await self._run_batch(jobs)
            finally:
                for _ in jobs:
                    self._queue.task_done()

    async def _run_batch(self, jobs: list[_Job]) -> None:
        by_run: dict[str, list[_Job]] = {}
        for job in jobs:
            by_run.setdefault(job.run.name, []).append(job)
        for group in by_run.values():
            prompts = [p for job in group for p in job.prompts]
            try:
                scores, version = await self._run_model(group[0].run.model.score, prompts)
            except Exception as exc:
                logger.exception("scoring a batch of %d prompts failed", len(prompts))
                for job in group:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(group), len(prompts))
            start = 0
            for job in group:
                end = start + len(job.prompts)
                if not job.future.done():  # the client may have gone
                    job.future.set_result((scores[start:end], version))
                start = end
