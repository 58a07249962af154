"""``AsyncSweetspotClient``: the same client for event loops. It differs from
``SweetspotClient`` only where it sends (``httpx.AsyncClient``) and sleeps (``asyncio``);
requests, retries, delays, errors and idempotency keys come from ``_base_client``."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TypeVar

import httpx

from sweetspot_client._base_client import (
    BaseClient,
    FeatureVectors,
    ReportVersions,
    Retries,
    _Backoff,
    _Call,
)
from sweetspot_client._exceptions import APIConnectionError
from sweetspot_client.schema import (
    DEFAULT_RUN,
    CalibrationResponse,
    HealthResponse,
    RunInfo,
    RunList,
    ScoreResponse,
    SelectResponse,
    StatsResponse,
    UpdateResponse,
)
from sweetspot_client.selection import SelectionRule

_T = TypeVar("_T")


class AsyncSweetspotClient(BaseClient[httpx.AsyncClient]):
    """``SweetspotClient`` for asyncio: the same methods, arguments, errors and retries.

    Several calls may be in flight at once from one event loop (``asyncio.gather``); each
    keeps its own retry state and, for ``update``, its own idempotency key.

    Example::

        async with AsyncSweetspotClient(base_url="http://localhost:8000") as sweetspot:
            chosen = await sweetspot.select(candidates, m=8)
            ...
            await sweetspot.update([candidates[i] for i in chosen.indices], rewards)
    """

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1:8000",
        timeout: float | httpx.Timeout = 60.0,
        api_key: str | None = None,
        retries: Retries | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        run: str = DEFAULT_RUN,
    ) -> None:
        http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=self._headers(api_key), transport=transport
        )
        super().__init__(http=http, retries=retries, run=run)

    async def score(
        self,
        prompts: list[str],
        *,
        posterior: bool = True,
        features: FeatureVectors | None = None,
        truncate: bool = False,
        policy_version: int | None = None,
    ) -> ScoreResponse:
        """Predicted success probability for each prompt under the current policy, with its
        uncertainty; ``posterior=False``: from the text alone, ignoring reported rewards.
        ``features``: a feature run's vectors, one per prompt ([N, feature_width]).
        ``truncate``: prompts over the service's length limit are cut to it, not refused.
        ``policy_version``: the trainer's current policy version; scores are then aimed at
        the version the prompts will be generated at (``target_version``)."""
        return await self._execute(
            self._score(prompts, posterior, features, truncate, policy_version)
        )

    async def select(
        self,
        prompts: list[str],
        m: int,
        *,
        tau: float = 0.5,
        seed: int | None = None,
        rule: SelectionRule = "nearest",
        epsilon: float = 0.2,
        group_size: int = 8,
        posterior: bool = True,
        timeout: float | None = None,
        retries: Retries | None = None,
        features: FeatureVectors | None = None,
        policy_version: int | None = None,
        lease_s: float | None = None,
    ) -> SelectResponse:
        """The ``m`` prompts the selection ``rule`` keeps (default: p̂ closest to ``tau``).

        ``timeout`` (seconds per attempt) and ``retries`` override the client's for this
        call: a trainer that falls back when selection fails wants a short budget here and
        a patient one for updates. ``features``: a feature run's vectors, one per candidate.
        ``policy_version``: the policy version the selection is for (echoed; see ``score``).
        ``lease_s``: lease the chosen prompts to this caller until they are reported or the
        lease ends, so that workers selecting at once get different prompts (``leased``).
        """
        call = self._select(
            prompts,
            m,
            tau,
            seed,
            rule,
            epsilon,
            group_size,
            posterior,
            timeout,
            retries,
            features,
            policy_version,
            lease_s,
        )
        return await self._execute(call)

    async def update(
        self,
        prompts: list[str],
        rewards: list[list[float]],
        *,
        steps: int | None = None,
        idempotency_key: str | None = None,
        features: FeatureVectors | None = None,
        versions: ReportVersions | None = None,
    ) -> UpdateResponse:
        """Report observed rewards (one list per prompt, each in [0, 1]); trains the value model.

        One idempotency key is used for all retries of this call, so a retried update is
        applied at most once by services that honour it. ``features``: a feature run's
        vectors, one per prompt (the ones its selection was made with). ``versions``: the
        policy versions that generated the rewards and each group's fate (asynchronous
        trainers; omit for a synchronous one).
        """
        call = self._update(prompts, rewards, steps, idempotency_key, features, versions)
        return await self._execute(call)

    async def stats(self, prompts: list[str]) -> StatsResponse:
        """Observed reward statistics of each prompt in this run (count, mean, last version)."""
        return await self._execute(self._stats(prompts))

    async def create_run(
        self, name: str, from_: str | None = None, *, feature_width: int | None = None
    ) -> RunInfo:
        """A new run (its own value model) on the service; use it with ``run=name``.
        ``from_``: start its value model as a copy of that run's (a warm start).
        ``feature_width``: a feature run, whose requests send ``features`` of that width."""
        call = self._create_run(name, from_, feature_width)
        return self._created_run(await self._execute(call))

    async def list_runs(self) -> RunList:
        return await self._execute(self._list_runs())

    async def get_run(self, name: str) -> RunInfo:
        return await self._execute(self._get_run(name))

    async def calibration(self, name: str | None = None) -> CalibrationResponse:
        """Online error (first-seen and revisited prompts apart), Brier score, rank
        correlation and calibration bins over the run's last reported prompts (default: this
        client's run)."""
        return await self._execute(self._calibration(name or self.run))

    async def export_run(self, name: str) -> bytes:
        """The run's value model as one portable file (``import_run`` reads it back)."""
        return await self._execute(self._export_run(name))

    async def import_run(self, name: str, data: bytes) -> RunInfo:
        """A new run ``name`` whose value model is ``data`` (from ``export_run``)."""
        return self._created_run(await self._execute(self._import_run(name, data)))

    async def delete_run(self, name: str) -> None:
        await self._execute(self._delete_run(name))

    async def health(self) -> HealthResponse:
        """Liveness plus readiness; never raises for a 503 'still loading' answer."""
        return await self._execute(self._health())

    async def wait_ready(self, timeout: float = 300.0, interval: float = 0.5) -> HealthResponse:
        """Poll readiness until the model is loaded; raise ``TimeoutError`` past ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            health: HealthResponse | None
            try:
                health = await self.health()
            except APIConnectionError:
                health = None
            if (ready := self._ready(health, deadline, timeout)) is not None:
                return ready
            await asyncio.sleep(interval)

    async def _execute(self, call: _Call[_T]) -> _T:
        attempts = self._attempts(call)
        while True:
            request = self._build_request(call)
            result: httpx.Response | httpx.TransportError
            try:
                result = await self._http.send(request)
            except httpx.TransportError as exc:
                result = exc
            verdict = attempts.judge(request, result)
            if not isinstance(verdict, _Backoff):
                return self._parse(call, verdict)
            await asyncio.sleep(verdict.seconds)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSweetspotClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
