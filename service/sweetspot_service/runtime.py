"""The model lifecycle: load in the background, serve once ready, report failure."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, ParamSpec, TypeVar

from sweetspot_service.backbone import Backbone
from sweetspot_service.core.config import Settings
from sweetspot_service.core.errors import NotReadyError
from sweetspot_service.core.metrics import Metrics
from sweetspot_service.store import InMemoryStore, StateStore
from sweetspot_service.value_model import ValueModel

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class Runtime:
    """Everything the routes share: settings, metrics, store and (once loaded) the model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store: StateStore = InMemoryStore()
        self.status: Literal["loading", "ok", "failed"] = "loading"
        self.error: str | None = None
        self._model: ValueModel | None = None
        self._thread: threading.Thread | None = None
        # Every model call runs on this one thread: torch's OpenMP pool belongs to the thread
        # that calls it, and several calling threads (FastAPI's pool) each spin up their own
        # team that busy-waits against the others (measured: 0.78x the bare forward at
        # concurrency 4 with the thread pool). One thread also orders updates and scores.
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweetspot-model")

    async def run_model(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the model thread without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.model_thread, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self.model_thread.shutdown(wait=True, cancel_futures=True)

    def start_loading(self) -> None:
        """Load the model in a thread, so liveness answers while a large backbone loads."""
        self._thread = threading.Thread(target=self._load, name="sweetspot-load", daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _load(self) -> None:
        s = self.settings
        try:
            backbone = Backbone.load(
                s.backbone,
                pooling=s.pooling,
                dtype=s.dtype,
                device=s.device,
                max_length=s.max_length,
                batch_size=s.batch_size,
                cache_dir=s.cache_dir,
            )
            self._model = ValueModel(
                backbone,
                train_mode=s.train_mode,
                head_lr=s.head_lr,
                backbone_lr=s.backbone_lr,
                weight_decay=s.weight_decay,
                grad_clip=s.grad_clip,
                embedding_cache_size=s.embedding_cache_size,
                seed=s.seed,
            )
        except Exception as exc:
            logger.exception("could not load the value model from %r", s.backbone)
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        self.status = "ok"
        self.metrics.model_ready.set(1)
        self.metrics.model_version.set(0)
        logger.info("value model ready: backbone=%s train_mode=%s", s.backbone, s.train_mode)

    @property
    def model(self) -> ValueModel | None:
        return self._model

    def require_model(self) -> ValueModel:
        if self._model is None:
            if self.status == "failed":
                raise NotReadyError(f"value model failed to load: {self.error}")
            raise NotReadyError("value model is still loading; retry shortly")
        return self._model
