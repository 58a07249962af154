"""What the update log needs from the service around it, and nothing more.

``Runtime`` satisfies ``LogHost`` structurally, so ``update_log.py`` and ``checkpointing.py``
never import ``runtime.py`` (which imports them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ParamSpec, Protocol, TypeVar

from sweetspot_service.core.config import Settings
from sweetspot_service.core.metrics import Metrics
from sweetspot_service.drain import Drain
from sweetspot_service.runs import Run
from sweetspot_service.store import StateStore

P = ParamSpec("P")
T = TypeVar("T")


class LogHost(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def store(self) -> StateStore: ...

    @property
    def runs(self) -> Mapping[str, Run]:
        """The runs this process serves; a run missing here was deleted meanwhile."""
        ...

    @property
    def replica_id(self) -> str: ...

    @property
    def drain(self) -> Drain:
        """Shutdown state: how long a request may still wait for the applier."""
        ...

    async def run_model(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the model thread (every model call goes through it)."""
        ...

    async def sync_runs(self) -> None:
        """Open runs created, and drop runs deleted, through another replica."""
        ...
