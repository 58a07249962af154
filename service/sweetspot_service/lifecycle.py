"""Creating, deleting and following runs: each run is one incarnation of its name.

``RunLifecycle`` keeps ``Runtime.runs`` in step with the store's run list (name → current
incarnation, see ``store.py``): it creates and deletes runs through the store's atomic
steps, follows what other replicas created, deleted or replaced, and removes what deleted
incarnations left behind (the store's tombstoned state and checkpoint folders), retrying
what could not be removed and reporting it (``leftovers``, listed in ``/readyz``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweetspot_client.schema import DEFAULT_RUN
from sweetspot_service.checkpoint import (
    CheckpointLoadError,
    incarnations_on_disk,
    load_checkpoint,
    remove_checkpoint,
    run_folder,
    save_checkpoint,
)
from sweetspot_service.core.errors import (
    FeaturesMismatchError,
    LimitExceededError,
    RunConflictError,
    RunFailedError,
    RunNotFoundError,
    StoreDownError,
)
from sweetspot_service.runs import Run
from sweetspot_service.store import (
    LEGACY,
    PromptStats,
    RunLimitError,
    RunRef,
    StoreUnavailableError,
    new_incarnation,
)
from sweetspot_service.value_model import forked_state

if TYPE_CHECKING:
    from sweetspot_service.runtime import Runtime

logger = logging.getLogger(__name__)
_RETRY_EVERY_S = 1.0
_SCAN_EVERY_S = 10.0


def _seed_width(seed: dict[str, Any], asked: int | None, source: str | None) -> int | None:
    """The width of a run started from ``seed``: the seed's own (``FeaturesMismatchError``
    when ``asked`` is another)."""
    width: int | None = seed.get("feature_width")
    if asked is not None and asked != width:
        origin = f"run {source!r}" if source is not None else "the imported value model"
        if width is None:
            kind, fix = "a text run", "leave out feature_width"
        else:
            kind = f"a feature run of width {width}"
            fix = f"leave out feature_width or give {width}"
        raise FeaturesMismatchError(
            f"{origin} is {kind}, so a run started from it is too: {fix} (a value model "
            "cannot change what its features are)"
        )
    return width


DELETED_FOLDER = "deleted"
"""Under the checkpoint folder: the in-memory store's deleted incarnations not yet removed."""
_LEGACY_MARK = "legacy"


def marked_deleted(folder: Path) -> list[RunRef]:
    """The incarnations marked deleted under ``folder`` (``mark``)."""
    if not folder.is_dir():
        return []
    return [
        RunRef(run.name, LEGACY if path.name == _LEGACY_MARK else path.name)
        for run in folder.iterdir()
        if run.is_dir()
        for path in run.iterdir()
        if path.is_file()
    ]


def mark(folder: Path, ref: RunRef) -> str | None:
    """Mark ``ref`` deleted under ``folder``; why it could not be, if it could not."""
    path = folder / ref.name / (ref.incarnation or _LEGACY_MARK)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:
        return f"{path}: {type(exc).__name__}: {exc}"
    return None


def unmark_deleted(folder: Path, ref: RunRef) -> None:
    """Drop ``ref``'s mark (its state is removed), and its run's folder once empty."""
    path = folder / ref.name / (ref.incarnation or _LEGACY_MARK)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


class RunLifecycle:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.lock = asyncio.Lock()
        """Orders creations, deletions and syncs (taken before ``UpdateLog.lock``)."""
        self.leftovers: dict[RunRef, str] = {}
        """Deleted incarnations whose state could not be removed yet, and why."""
        self._next_collect = 0.0
        self._collecting = asyncio.Lock()  # a delete's collection and the periodic one

    async def create(
        self,
        name: str,
        source: str | None = None,
        seed: dict[str, Any] | None = None,
        *,
        feature_width: int | None = None,
    ) -> Run:
        """A new incarnation of ``name``; 409 if the name exists here or in the store (the
        store decides atomically, so of two replicas creating one name only one succeeds).

        With ``source``, a warm start: the new run's model starts as a copy of that run's
        current one, at version 0 (``value_model.forked_state``). The copy is written as the
        new incarnation's checkpoint *before* the store lists the run, so every replica that
        opens it restores the same model; without a checkpoint folder (one process, the
        in-memory store) it is handed to the new run directly. ``seed``: a starting state
        given as is (an imported file, ``portable.py``), placed the same way.

        ``feature_width``: a feature run (``features.py``), its width kept with the name in
        the store's run list. A fork or an import has its starting state's width; asking
        for another one is a 422."""
        self._rt.require_ready()
        async with self.lock:
            try:
                await self.refresh(name)
                if name in self._rt.runs:
                    raise RunConflictError(f"run {name!r} already exists")
                if len(self._rt.runs) >= self._rt.settings.max_runs:
                    raise self._limit_error()
                stats: dict[str, PromptStats] = {}
                if source is not None:
                    seed, stats = await self._fork_seed(source)
                elif seed is not None:
                    self._require_shared_folder("importing")
                if seed is not None:
                    feature_width = _seed_width(seed, feature_width, source)
                adopted = self._adoptable(name) if seed is None else None
                if adopted is not None:
                    await self._check_adopted(name, adopted, feature_width)
                ref = RunRef(name, new_incarnation() if adopted is None else adopted)
                directory = self._rt.settings.checkpoint_dir
                if seed is not None and directory is not None:
                    await asyncio.to_thread(
                        save_checkpoint, directory, name, seed, "0-0", ref.incarnation
                    )
                try:  # the limit too is decided there: replicas cannot pass it together
                    created = await self._rt.store.create_run(
                        ref, feature_width, stats, max_runs=self._rt.settings.max_runs
                    )
                except RunLimitError:
                    created = None
                if not created:
                    if seed is not None and directory is not None:
                        await asyncio.to_thread(remove_checkpoint, directory, name, ref.incarnation)
                    if created is None:
                        raise self._limit_error(elsewhere=True)
                    raise RunConflictError(
                        f"run {name!r} already exists (created through another replica)"
                    )
            except StoreUnavailableError as exc:
                raise StoreDownError(f"run not created, retry: {exc}") from exc
            # With a folder, the seed is restored from it, as every other replica restores it.
            return await self._rt.open_run(*ref, seed=seed if directory is None else None)

    def _limit_error(self, *, elsewhere: bool = False) -> RunConflictError:
        limit = self._rt.settings.max_runs
        where = " (counting those created through other replicas)" if elsewhere else ""
        return RunConflictError(
            f"run limit reached: --max-runs is {limit} and {limit} runs exist{where}; delete "
            "one first or raise SWEETSPOT_MAX_RUNS (on every replica)"
        )

    def _require_shared_folder(self, doing: str) -> None:
        if self._rt.store.kind != "memory" and self._rt.settings.checkpoint_dir is None:
            raise LimitExceededError(
                f"{doing} a run on a shared store needs a checkpoint folder shared by the "
                "replicas (--checkpoint-dir): the new run's starting model is written there so "
                "every replica builds the same one"
            )

    async def _fork_seed(self, source: str) -> tuple[dict[str, Any], dict[str, PromptStats]]:
        """The starting state of a run forked from ``source`` (lifecycle lock held), and the
        store's statistics of the prompts whose reward histories it carries: the rewards
        its scores come from count as its own (``/v1/stats``, first-seen in calibration),
        as last seen at its version 0. (Counted from the store, so they include an update
        of the source accepted but not yet applied to the copied model.)"""
        self._require_shared_folder("forking")
        await self.refresh(source)
        run = self._rt.runs.get(source)
        if run is None:
            raise RunNotFoundError(f"cannot fork run {source!r}: it does not exist")
        if run.unservable is not None:
            raise RunFailedError(f"cannot fork run {source!r}: {run.unservable}")
        state = forked_state(await self._rt.run_model(run.model.state))
        hashes = [item[0] for item in state.get("history", {}).get("items", [])]
        stats: dict[str, PromptStats] = {}
        for start in range(0, len(hashes), 1000):  # up to replay_window (10⁶) prompts
            part = hashes[start : start + 1000]
            found = await self._rt.store.prompt_stats(run.ref, part)
            for h, s in zip(part, found, strict=True):
                if s is not None:
                    stats[h] = PromptStats(s.count, s.reward_sum, 0)
        return state, stats

    def _adoptable(self, name: str) -> str | None:
        """The in-memory store forgets runs at a restart but the checkpoint folder does not:
        creating such a run again continues its newest checkpointed incarnation (one not
        deleted in this process). The run list of any other store outlives the process."""
        directory = self._rt.settings.checkpoint_dir
        if self._rt.store.kind != "memory" or directory is None:
            return None
        for incarnation in incarnations_on_disk(directory, name):
            if RunRef(name, incarnation) not in self.leftovers:
                return incarnation
        return None

    async def _check_adopted(self, name: str, incarnation: str, width: int | None) -> None:
        """The checkpoint a create continues (``_adoptable``) is of a run of this kind: a
        value model cannot change what its features are. One that cannot be read is left
        to ``open_run``, which fails the run naming the file."""
        directory = self._rt.settings.checkpoint_dir
        assert directory is not None
        try:
            restored = await asyncio.to_thread(load_checkpoint, directory, name, incarnation)
        except CheckpointLoadError:
            return
        saved = None if restored is None else restored[0].get("feature_width")
        if restored is not None and saved != width:
            kind = "a text run" if saved is None else f"a feature run of width {saved}"
            fix = "leave out feature_width" if saved is None else f"give feature_width {saved}"
            raise FeaturesMismatchError(
                f"run {name!r} has a checkpoint of {kind} in "
                f"{run_folder(directory, name, incarnation)}, which creating it continues: "
                f"{fix}, or remove that folder to start afresh"
            )

    async def refresh(self, name: str) -> None:
        """Bring one run up to the store's run list now (``sync`` does all, later)."""
        current = await self._rt.store.current_incarnation(name)
        run = self._rt.runs.get(name)
        if run is not None and run.incarnation != current:
            async with self._rt.log.lock:
                self._drop_run(name)
            logger.info("run %s: dropped (deleted or replaced elsewhere)", name)
            run = None
        if run is None and current is not None and len(self._rt.runs) < self._rt.settings.max_runs:
            await self._rt.open_run(name, current)

    async def sync(self) -> None:
        """Follow runs created, deleted or replaced through another replica sharing the store,
        and retry removing deleted runs' leftovers."""
        await self.collect()
        current = await self._rt.store.list_runs()
        here = {name: run.incarnation for name, run in self._rt.runs.items()}
        if current == here or self._rt.status != "ok":
            return
        async with self.lock:
            here = {name: run.incarnation for name, run in self._rt.runs.items()}
            gone = [n for n, i in here.items() if current.get(n) != i and n != DEFAULT_RUN]
            if gone:
                async with self._rt.log.lock:
                    for name in gone:
                        self._drop_run(name)
                        logger.info("run %s: dropped (deleted or replaced elsewhere)", name)
            for name, incarnation in current.items():
                if name in self._rt.runs:
                    continue
                if len(self._rt.runs) >= self._rt.settings.max_runs:
                    logger.error("run %s exists in the store but max_runs is reached", name)
                    break
                await self._rt.open_run(name, incarnation)  # the applier replays its log next
                logger.info("run %s: opened (created elsewhere)", name)

    def _drop_run(self, name: str) -> None:
        run = self._rt.runs.pop(name)
        run.fail_waiters(RunNotFoundError(f"run {name!r} was deleted"))
        self._rt.metrics.runs.set(len(self._rt.runs))
        self._rt.metrics.forget_run(name)

    async def delete(self, name: str) -> None:
        """Delete the run's current incarnation: from the store's run list (atomic: an
        append racing with it is either in the removed log or refused), then its state and
        checkpoints. The run is gone once the first step succeeded; what cannot be removed
        then (a read-only checkpoint folder, the store gone) is listed in ``problems`` and
        retried (``collect``), never answered with a 500."""
        self._rt.require_ready()
        if name == DEFAULT_RUN:
            raise RunConflictError("the default run cannot be deleted")
        async with self.lock, self._rt.log.lock:  # never mid-apply or mid-checkpoint
            try:
                current = await self._rt.store.current_incarnation(name)
                if current is not None:  # this replica may not have seen it replaced yet
                    removed = await self._rt.store.delete_run(RunRef(name, current))
            except StoreUnavailableError as exc:
                raise StoreDownError(f"run not deleted, retry: {exc}") from exc
            if name in self._rt.runs:
                self._drop_run(name)
            if current is None or not removed:
                raise RunNotFoundError(f"run {name!r} does not exist")
        await self.collect(force=True)

    async def collect(self, *, force: bool = False) -> None:
        """Remove what deleted incarnations left behind: for each tombstone in the store,
        its checkpoint folder, then its state in the store and the tombstone. What cannot be
        removed yet is kept in ``leftovers`` (``/readyz`` lists it) and retried: every
        second while there is some, else every ``_SCAN_EVERY_S`` (a replica that stopped
        mid-delete leaves its tombstone for the others), and at once with ``force``."""
        async with self._collecting:
            now = time.monotonic()
            if force or now >= self._next_collect:
                await self._collect(now)

    def _deleted_folder(self) -> Path | None:
        """Where the in-memory store's tombstones outlive the process: the checkpoint
        folder, which outlives it too (``<dir>/deleted/<run>/<incarnation>``, empty files).
        Without them a run deleted while its checkpoints could not be removed would come
        back with its old model when created after a restart (``_adoptable``). Any other
        store keeps its tombstones itself."""
        directory = self._rt.settings.checkpoint_dir
        if self._rt.store.kind != "memory" or directory is None:
            return None
        return directory / DELETED_FOLDER

    async def _collect(self, now: float) -> None:
        try:
            tombstones = set(await self._rt.store.tombstones())
        except StoreUnavailableError:
            self._next_collect = now + _RETRY_EVERY_S
            return  # the store outage is a problem of its own; nothing to do without it
        directory = self._rt.settings.checkpoint_dir
        marks = self._deleted_folder()
        if marks is not None:
            tombstones |= set(await asyncio.to_thread(marked_deleted, marks))
        left: dict[RunRef, str] = {}
        for ref in sorted(tombstones):
            unkept = None  # marked first: a crash mid-removal must not bring it back either
            if marks is not None:
                unkept = await asyncio.to_thread(mark, marks, ref)
            try:
                if directory is not None:
                    await asyncio.to_thread(remove_checkpoint, directory, *ref)
                await self._rt.store.collect(ref)
                if marks is not None:
                    await asyncio.to_thread(unmark_deleted, marks, ref)
            except OSError as exc:
                folder = run_folder(directory or Path("."), *ref)
                left[ref] = f"its checkpoints in {folder} ({type(exc).__name__}: {exc})"
                if unkept is not None:
                    left[ref] += f"; nor can the delete be kept across a restart ({unkept})"
            except StoreUnavailableError as exc:
                left[ref] = f"its state in the store ({exc})"
        for ref, why in left.items():
            if self.leftovers.get(ref) != why:
                logger.warning("run %s deleted, but cannot remove %s yet", ref.name, why)
        self.leftovers = left
        self._next_collect = now + (_RETRY_EVERY_S if left else _SCAN_EVERY_S)
