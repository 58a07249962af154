"""The service's lifecycle: open the store, load the backbone and every run, replay, serve, drain.

``Runtime`` is what routes share (through ``api/deps.py``): settings, metrics, the store, the
runs, the score batcher and the update log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from sweetspot_client.schema import DEFAULT_RUN, MAX_FEATURE_WIDTH
from sweetspot_service.backbone import Backbone
from sweetspot_service.batcher import ScoreBatcher
from sweetspot_service.calibration import CalibrationWindow
from sweetspot_service.checkpoint import (
    CheckpointLoadError,
    load_checkpoint,
    run_folder,
)
from sweetspot_service.core.config import Settings
from sweetspot_service.core.errors import (
    IncompatibleModelError,
    NotReadyError,
    RunNotFoundError,
    RunUnavailableError,
)
from sweetspot_service.core.metrics import Metrics
from sweetspot_service.drain import Drain
from sweetspot_service.lifecycle import RunLifecycle
from sweetspot_service.models import default_feature_layer
from sweetspot_service.portable import PortableFormatError, pack, unpack
from sweetspot_service.runs import Run
from sweetspot_service.store import (
    LEGACY,
    RunRef,
    StateStore,
    StoreUnavailableError,
    prompt_hash,
)
from sweetspot_service.store_memory import InMemoryStore
from sweetspot_service.update_log import DIVERGED_WAY_OUT, UpdateLog
from sweetspot_service.value_model import EmbeddingCache, Scored, ValueModel, forked_state

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Status = Literal["loading", "ok", "failed", "draining"]


IMPORT_BASE_BYTES = 256 * 2**20
"""A head-mode file (replay window, histories) with room: about 13 MB at the defaults."""
IMPORT_BYTES_PER_PARAMETER = 16
"""Full mode: float32 weights and AdamW's two moments (12 bytes a parameter), with room."""


def make_store(settings: Settings) -> StateStore:
    if settings.redis_url is None:
        return InMemoryStore(idempotency_ttl_s=settings.idempotency_ttl_s)
    from sweetspot_service.store_redis import RedisStore

    return RedisStore(
        settings.redis_url,
        prefix=settings.redis_prefix,
        timeout_s=settings.redis_timeout_s,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        score_ttl_s=settings.score_cache_ttl_s,
    )


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store: StateStore = make_store(settings)
        self.status: Status = "loading"
        self.error: str | None = None
        self.runs: dict[str, Run] = {}
        self.replica_id = uuid.uuid4().hex[:12]
        self.drain = Drain(
            shutdown_timeout_s=settings.shutdown_timeout_s,
            store_timeout_s=settings.redis_timeout_s if settings.redis_url else 0.0,
        )
        self.log = UpdateLog(self)
        self.metrics.failed_runs.set_function(lambda: sum(1 for r in self.runs.values() if r.error))
        self.metrics.checkpoint_failing_runs.set_function(
            lambda: sum(1 for r in self.runs.values() if r.checkpoint_error)
        )
        self.batcher = ScoreBatcher(
            self.run_model,
            max_prompts=settings.batch_max_prompts,
            max_chars=settings.batch_max_chars,
            max_wait_s=settings.batch_wait_ms / 1000,
            on_batch=lambda _requests, prompts: self.metrics.score_batch_prompts.observe(prompts),
        )
        self._backbone: Backbone | None = None
        self._backbone_taken = False
        self._parameters = 0
        """The backbone's parameter count, once loaded (the bound on a full-mode import)."""
        self._cache = EmbeddingCache(
            settings.embedding_cache_size, int(settings.embedding_cache_mb * 2**20)
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.lifecycle = RunLifecycle(self)
        # Every model call runs on this one thread: torch's OpenMP pool belongs to the thread
        # that calls it, and several calling threads (FastAPI's pool) each spin up their own
        # team that busy-waits against the others (measured: 0.78x the bare forward at
        # concurrency 4 with the thread pool). One thread also orders updates and scores.
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweetspot-model")

    async def run_model(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the model thread without blocking the event loop."""
        loop = asyncio.get_running_loop()
        busy = self.metrics.model_busy_seconds

        def timed() -> T:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                busy.inc(time.perf_counter() - start)

        return await loop.run_in_executor(self.model_thread, timed)

    # Lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Begin loading in the background, so liveness answers while a big backbone loads."""
        self.drain.bind(asyncio.get_running_loop())
        self._tasks.append(asyncio.create_task(self._start(), name="sweetspot-start"))

    async def _start(self) -> None:
        try:
            self._backbone = await self.run_model(self._load_backbone)
            self._parameters = sum(p.numel() for p in self._backbone.model.parameters())
            names = await self._retry_store(self.store.list_runs)
            if warning := await self.store.durability_warning():
                logger.warning(warning)
            for name, incarnation in sorted(({DEFAULT_RUN: LEGACY} | names).items()):
                await self.open_run(name, incarnation)
            for run in list(self.runs.values()):  # replay what came after each checkpoint
                await self._retry_store(functools.partial(self.log.apply_pending, run))
            await self.lifecycle.collect(force=True)  # deletes another replica left unfinished
        except Exception as exc:
            logger.exception("could not start the value model from %r", self.settings.backbone)
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        self.batcher.start()
        self._tasks.append(asyncio.create_task(self.log.run_forever(), name="sweetspot-applier"))
        self.status, self.error = "ok", None
        self.metrics.model_ready.set(1)
        logger.info(
            "value model ready: backbone=%s train_mode=%s store=%s runs=%s",
            self.settings.backbone,
            self.settings.train_mode,
            self.store.kind,
            ",".join(self.runs),
        )

    async def _retry_store(self, op: Callable[[], Awaitable[T]]) -> T:
        """At startup, wait for the store rather than fail: Redis may start after us."""
        while True:
            try:
                return await op()
            except StoreUnavailableError as exc:
                self.error = f"waiting for the store: {exc}"
                logger.warning(self.error)
                await asyncio.sleep(1.0)

    def _load_backbone(self) -> Backbone:
        s = self.settings
        return Backbone.load(
            s.backbone,
            pooling=s.pooling,
            dtype=s.dtype,
            device=s.device,
            max_length=s.max_length,
            batch_size=s.batch_size,
            cache_dir=s.cache_dir,
            layer=self.feature_layer,
        )

    @property
    def feature_layer(self) -> int | None:
        """The block head mode reads (None: last hidden state; full mode always)."""
        if self.settings.train_mode == "full":
            return None
        return self.settings.feature_layer or default_feature_layer(self.settings.backbone)

    def _build_model(
        self,
        name: str,
        incarnation: str = LEGACY,
        *,
        restore: bool = True,
        seed: dict[str, Any] | None = None,
        feature_width: int | None = None,
    ) -> tuple[ValueModel, str, dict[str, Any] | None]:
        """A fresh model for run ``name`` (on the model thread), restored from its checkpoint
        unless not ``restore``; also the checkpoint's applied log id and calibration window
        (None: none saved). ``CheckpointLoadError``: the checkpoint cannot be read. ``seed``:
        a forked run's starting state (``value_model.forked_state``) when no checkpoint
        folder holds it. ``feature_width``: a feature run's (``features.py``)."""
        s = self.settings
        assert self._backbone is not None
        if feature_width is not None:  # whatever the service's modes: ridge on the vectors
            model = ValueModel.for_features(
                feature_width,
                replay_window=s.replay_window,
                replay_half_life=s.replay_half_life,
                seed=s.seed,
                reorder_window=s.reorder_window,
            )
        else:
            model = self._text_model()
        applied_id = "0-0"
        calibration = None
        if seed is not None:
            model.load_state(seed)
        if s.checkpoint_dir is not None and restore:
            restored = load_checkpoint(s.checkpoint_dir, name, incarnation)
            if restored is not None:
                state, applied_id = restored
                model.load_state(state)
                calibration = state.get("calibration")
                logger.info("run %s: restored version %d from checkpoint", name, model.version)
        return model, applied_id, calibration

    def _text_model(self) -> ValueModel:
        s = self.settings
        assert self._backbone is not None
        # Head mode shares the frozen backbone; full mode trains a private copy per run (the
        # first run takes the one loaded at startup).
        backbone = self._backbone
        if s.train_mode == "full":
            if self._backbone_taken:
                backbone = self._load_backbone()
            self._backbone_taken = True
        return ValueModel(
            backbone,
            train_mode=s.train_mode,
            head_fit=s.head_fit,
            replay_window=s.replay_window,
            replay_half_life=s.replay_half_life,
            head_lr=s.head_lr,
            backbone_lr=s.backbone_lr,
            weight_decay=s.weight_decay,
            grad_clip=s.grad_clip,
            embedding_cache=self._cache,
            seed=s.seed,
            reorder_window=s.reorder_window,
        )

    def _load_failure(self, name: str, incarnation: str, exc: Exception) -> str:
        if isinstance(exc, CheckpointLoadError):
            why = str(exc)
        else:
            folder = run_folder(self.settings.checkpoint_dir or Path("."), name, incarnation)
            why = f"its checkpoint in {folder} cannot be restored: {type(exc).__name__}: {exc}"
        return (
            f"run {name!r} failed to load: {why}; replace or remove the file and restart, or "
            "delete the run (the other runs serve meanwhile)"
        )

    async def open_run(
        self, name: str, incarnation: str, seed: dict[str, Any] | None = None
    ) -> Run:
        """Build, restore and register the run. A checkpoint that cannot be restored fails
        this run alone (named with its file in the error), never the service. A feature
        run's width comes from the store's run list, where its create put it."""
        ref = RunRef(name, incarnation)
        width = await self.store.feature_width(ref)
        failure = None
        try:
            model, checkpoint_id, calibration = await self.run_model(
                self._build_model, name, incarnation, seed=seed, feature_width=width
            )
        except Exception as exc:  # CheckpointLoadError, or a state that does not fit
            failure = self._load_failure(name, incarnation, exc)
            logger.error(failure)
            model, checkpoint_id, calibration = await self.run_model(
                self._build_model, name, incarnation, restore=False, feature_width=width
            )
        applied_id = await self.store.resume_log(ref, model.version, checkpoint_id)
        run = Run(
            name,
            model,
            incarnation=incarnation,
            applied_id=applied_id,
            checkpointed_version=model.version,
            calibration=CalibrationWindow(self.settings.calibration_window),
        )
        if failure is not None:
            run.fail(failure, unservable=True)
        run.calibration.load_state(calibration, model.version)
        self.runs[name] = run
        self.metrics.runs.set(len(self.runs))
        self.metrics.model_version.labels(name).set(model.version)
        return run

    def begin_drain(self) -> None:
        """SIGTERM: readiness turns 503 so load balancers stop sending work, and requests in
        flight get what is left of the drain's request budget (``drain.py``)."""
        if self.status == "ok":
            self.status = "draining"
        self.drain.begin()

    async def close(self) -> None:
        """Finish queued scores, apply what was accepted, checkpoint, close (bounded)."""
        self.begin_drain()
        try:
            await asyncio.wait_for(self._finish(), self.drain.close_s)
        except (TimeoutError, StoreUnavailableError) as exc:
            self._explain_unfinished(exc)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
        self.model_thread.shutdown(wait=True, cancel_futures=True)

    def _explain_unfinished(self, exc: BaseException) -> None:
        pending = {name: run.pending for name, run in self.runs.items() if run.pending}
        where = (
            "the in-memory store loses them; their clients were answered 503 and retry"
            if self.store.kind == "memory"
            else "they stay in the update log and are applied at the next start"
        )
        reason = (
            f"the budget ({self.drain.close_s:.1f} s, half of shutdown_timeout_s) ran out"
            if isinstance(exc, TimeoutError)
            else f"the store is unavailable ({exc})"
        )
        logger.warning(
            "shutdown could not apply every accepted update: %s; not applied: %s; %s "
            "(raise --shutdown-timeout-s to finish them at shutdown)",
            reason,
            pending or "none (only the checkpoint is missing)",
            where,
        )

    async def _finish(self) -> None:
        await self.batcher.stop()
        self.log.stop()  # the loop ends after its current pass; the lock orders the rest
        if self._backbone is not None and self.runs:
            await self.log.apply_all()
            await self.log.checkpoint_due(force=True)

    # Scoring ---------------------------------------------------------------------------

    async def score(
        self,
        run: Run,
        prompts: list[str],
        features: list[list[float]] | None = None,
        policy_version: int | None = None,
    ) -> tuple[list[Scored], int, float]:
        """Scores per prompt at one model version: score cache first, the batcher for the rest.

        A store outage only costs the cache: scores are then computed, never refused. Each
        ``Scored`` is cached as its four numbers, under the prompt's hash plus a suffix. A run
        whose model cannot serve (``Run.unservable``) answers 503 with the reason, and so
        does one whose model turns out to predict non-finite values (it is then failed).

        A feature run's ``features`` (checked by ``deps.admit_features``) are scored on the
        model thread directly, past the cache and the batcher: both exist to save backbone
        forward passes, which a feature run does not make, and the vectors a trainer sends
        change as its policy does, so a cache keyed by them would rarely be hit again.

        Also returns the policy version the scores are aimed at. With ``policy_version``
        (a selection that says which version it is for) that target depends on the request,
        so such scores are made on the model thread directly too, past cache and batcher;
        without it the target is a function of the model version, as the cache key is.
        """
        if run.unservable:
            raise RunUnavailableError(run.unservable)
        if features is not None or policy_version is not None:
            scores, version, target = await self.run_model(
                run.model.score_for, prompts, features, policy_version
            )
        else:
            scores, version = await self._score(run, prompts)
            target = run.model.history.target()  # as of now: newer than version if one landed
        if not all(math.isfinite(value) for scored in scores for value in scored):
            run.fail(
                f"run {run.name!r} diverged: its model (version {version}) predicts "
                f"non-finite values: {DIVERGED_WAY_OUT}",
                unservable=True,
            )
            logger.error(run.unservable)
            raise RunUnavailableError(run.unservable or "")
        return scores, version, target

    async def _score(self, run: Run, prompts: list[str]) -> tuple[list[Scored], int]:
        version = run.version
        use_cache = self.settings.score_cache_ttl_s > 0
        keys = _cache_keys(prompts) if use_cache else []
        cached: list[Scored | None] = [None] * len(prompts)
        if use_cache:
            try:
                cached = _unpack(await self.store.cached_scores(run.ref, version, keys))
            except StoreUnavailableError:
                self.metrics.store_errors.labels("score_cache").inc()
        missing = [i for i, c in enumerate(cached) if c is None]
        hits = len(prompts) - len(missing)
        self.metrics.prompts_scored.inc(len(prompts))
        self.metrics.score_cache_hits.inc(hits)
        if not missing:
            return [c for c in cached if c is not None], version
        fresh, fresh_version = await self.batcher.predict(run, [prompts[i] for i in missing])
        if fresh_version != version and hits:  # an update landed meanwhile: one version only
            return await self.batcher.predict(run, prompts)
        scores = list(cached)
        for i, scored in zip(missing, fresh, strict=True):
            scores[i] = scored
        if use_cache:
            try:
                await self.store.cache_scores(
                    run.ref,
                    fresh_version,
                    [keys[len(_FIELDS) * i + f] for i in missing for f in range(len(_FIELDS))],
                    [float(value) for scored in fresh for value in scored],
                )
            except StoreUnavailableError:
                self.metrics.store_errors.labels("score_cache").inc()
        return [s for s in scores if s is not None], fresh_version

    def export_calibration(self) -> None:
        """Bring the calibration series up to date, before each scrape: a summary costs
        milliseconds, so only runs whose window changed since the last scrape are summarised."""
        for run in self.runs.values():
            if run.calibration.changes != run.calibration_exported:
                self.metrics.record_calibration(run.name, run.calibration.summary())
                run.calibration_exported = run.calibration.changes

    def problems(self) -> list[str]:
        """What is wrong without making the service unready (``/readyz`` lists it)."""
        found = []
        for run in sorted(self.runs.values(), key=lambda r: r.name):
            if run.error:
                found.append(f"run {run.name!r} failed and refuses updates: {run.error}")
            if run.checkpoint_error:
                found.append(
                    f"run {run.name!r} cannot be checkpointed ({run.checkpoint_error}); its "
                    "updates are applied and kept in the update log meanwhile"
                )
        for ref, why in sorted(self.lifecycle.leftovers.items()):
            found.append(
                f"run {ref.name!r} (incarnation {ref.incarnation or 'legacy'}) was deleted but "
                f"not all of its state could be removed yet: {why}; retrying"
            )
        return found

    # Runs ------------------------------------------------------------------------------

    def require_ready(self) -> None:
        """Models are loaded and replayed. While draining they still are: requests admitted
        before SIGTERM finish (the admission middleware turns new ones away)."""
        if self.status in ("ok", "draining"):
            return
        if self.status == "failed":
            raise NotReadyError(f"value model failed to load: {self.error}")
        raise NotReadyError("value model is still loading; retry shortly")

    async def get_run(self, name: str) -> Run:
        """The run named ``name`` as the store lists it when the request arrives.

        With a shared store this replica checks the run list first (one small read), so a
        run created, deleted or created again through another replica since its last poll
        is answered as it is now: opened, 404, or the new incarnation, never the old one's
        model or statistics. While the store cannot be read it answers from what it holds.
        """
        self.require_ready()
        run = self.runs.get(name)
        if self.store.kind != "memory":
            with contextlib.suppress(StoreUnavailableError):
                current = await self.store.current_incarnation(name)
                if run is None or run.incarnation != current:
                    async with self.lifecycle.lock:
                        await self.lifecycle.refresh(name)
            held, run = run, self.runs.get(name)
            if held is not None and run is None:
                raise RunNotFoundError(
                    f"run {name!r} was deleted (through another replica): create it again "
                    "with POST /v1/runs to start afresh"
                )
        if run is None:
            raise RunNotFoundError(  # never lists the runs: they may be other clients'
                f"run {name!r} does not exist: create it with POST /v1/runs, or list the runs "
                "your key may see with GET /v1/runs"
            )
        return run

    async def create_run(
        self, name: str, source: str | None = None, feature_width: int | None = None
    ) -> Run:
        return await self.lifecycle.create(name, source, feature_width=feature_width)

    def _about(self, feature_width: int | None = None) -> dict[str, Any]:
        """What a value-model file must match to be imported here (``portable.py``); a
        feature run's file only its width and modes (it has no backbone)."""
        if feature_width is not None:
            return {"feature_width": feature_width, "train_mode": "head", "head_fit": "ridge"}
        s = self.settings
        return {
            "backbone": s.backbone,
            "train_mode": s.train_mode,
            "head_fit": s.head_fit if s.train_mode == "head" else "sgd",
            "feature_layer": self.feature_layer,
        }

    def import_limit(self) -> int:
        """The bound on an imported value-model file: the setting, or one that admits what
        this service exports (full mode carries the backbone's weights and AdamW moments)."""
        if self.settings.max_import_bytes is not None:
            return self.settings.max_import_bytes
        full = self.settings.train_mode == "full"
        return IMPORT_BASE_BYTES + (IMPORT_BYTES_PER_PARAMETER * self._parameters if full else 0)

    async def export_run(self, name: str) -> bytes:
        """The run's current value model as one portable file, renumbered to version 0."""
        run = await self.get_run(name)
        if run.unservable is not None:
            raise RunUnavailableError(f"run {name!r} cannot be exported: {run.unservable}")
        state = await self.run_model(run.model.state)
        about = {**self._about(run.feature_width), "exported_from": name}
        about["exported_version"] = int(state["version"])
        return await asyncio.to_thread(pack, forked_state(state), about)

    async def import_run(self, name: str, data: bytes) -> Run:
        """A new run whose value model is the file's (409 if the name exists)."""
        self.require_ready()
        try:
            state, about = await asyncio.to_thread(unpack, data)
        except PortableFormatError as exc:
            raise IncompatibleModelError(str(exc)) from exc
        width = about.get("feature_width")
        if width is not None and not (isinstance(width, int) and 1 <= width <= MAX_FEATURE_WIDTH):
            raise IncompatibleModelError(f"the file's feature_width {width!r} is not a width")
        mine = self._about(width)
        differ = {k: (about.get(k), v) for k, v in mine.items() if about.get(k) != v}
        if differ:
            said = ", ".join(
                f"{k} {got!r} (this service: {want!r})" for k, (got, want) in differ.items()
            )
            raise IncompatibleModelError(
                f"the file's value model was made with {said}: import it into a service "
                "started with the same --backbone, --train-mode, --head-fit and --feature-layer"
            )
        version = state.get("version")
        if type(version) is not int or version != 0:
            raise IncompatibleModelError(
                f"the file's value model is at version {version!r}; an exported file is "
                "renumbered to version 0: export it again with GET /v1/runs/{name}/export"
            )
        await self.run_model(self._trial_import, state, width)
        return await self.lifecycle.create(name, seed=state, feature_width=width)

    def _trial_import(self, state: dict[str, Any], width: int | None) -> None:
        """Load an imported state into a throwaway model and take one update and one score
        on it, so a file that loads but cannot learn (a tensor of the wrong length, say) is
        refused here instead of failing its run, or the applier, later."""
        try:
            model, _, _ = self._build_model(
                "import", restore=False, seed=state, feature_width=width
            )
            features = None if width is None else [[0.0] * width]
            model.update(["Sweetspot import check."], [0.5], counts=[2], features=features)
            model.score(["Sweetspot import check, scored."], features=features)
        except Exception as exc:
            raise IncompatibleModelError(
                f"the file's value model does not load or learn in this service "
                f"({type(exc).__name__}: {exc}): export it again from a service of this release"
            ) from exc

    async def delete_run(self, name: str) -> None:
        await self.lifecycle.delete(name)

    async def sync_runs(self) -> None:
        await self.lifecycle.sync()


_FIELDS = Scored._fields


def _cache_keys(prompts: list[str]) -> list[str]:
    """Score-cache keys: one per prompt and ``Scored`` field, prompt by prompt."""
    return [f"{prompt_hash(p)}:{field}" for p in prompts for field in _FIELDS]


def _unpack(values: list[float | None]) -> list[Scored | None]:
    """Cached numbers back into one ``Scored`` per prompt (None where any is missing)."""
    width = len(_FIELDS)
    rows = [values[i : i + width] for i in range(0, len(values), width)]
    return [None if any(v is None for v in row) else Scored(*map(float, row)) for row in rows]  # type: ignore[arg-type]
