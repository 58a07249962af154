"""What the sync and async clients share: request building, the retry decision, the backoff
delay and response parsing.

Each public method of ``SweetspotClient`` and ``AsyncSweetspotClient`` builds its request
description once (``_Call``, from ``BaseClient``) and hands it to the client's ``_execute``
loop, which only sends and sleeps; every decision in between is ``_Attempts.judge``'s. So the
two clients cannot drift apart in what they retry, how long they wait or what they raise.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

import httpx
from pydantic import BaseModel

from sweetspot_client._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    status_error,
)
from sweetspot_client.schema import (
    CalibrationResponse,
    GroupFate,
    GroupVersions,
    HealthResponse,
    RunCreate,
    RunInfo,
    RunList,
    ScoreRequest,
    ScoreResponse,
    SelectRequest,
    SelectResponse,
    StatsRequest,
    StatsResponse,
    UpdateRequest,
    UpdateResponse,
)
from sweetspot_client.selection import SelectionRule

_T = TypeVar("_T")
_HttpT = TypeVar("_HttpT", bound=httpx.Client | httpx.AsyncClient)
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class _ToList(Protocol):
    """A numpy array or torch tensor: anything whose ``tolist()`` gives nested numbers."""

    def tolist(self) -> Any: ...


FeatureVectors: TypeAlias = Sequence[Sequence[float]] | _ToList
"""A feature run's vectors, one per prompt ([N, W]): nested sequences of numbers, a 2-D numpy
array or a 2-D tensor (sent as JSON numbers)."""


def feature_rows(features: FeatureVectors | None) -> list[list[float]] | None:
    """``features`` as the wire schema takes them (plain floats, one list per prompt)."""
    if features is None:
        return None
    rows = features.tolist() if hasattr(features, "tolist") else features
    try:
        return [[float(x) for x in row] for row in rows]
    except TypeError as exc:
        raise TypeError(
            "features must hold one vector of numbers per prompt ([N, W]): a list of lists, "
            f"a 2-D array or a 2-D tensor ({exc})"
        ) from exc


_LATER_FIELDS = (
    "features",
    "policy_version",
    "version_start",
    "version_end",
    "selected_version",
    "fate",
    "groups",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportVersions:
    """Where a report's rewards came from (``update(versions=...)``): the policy versions
    that generated them and what became of each group. Every field is optional; ``groups``
    (one ``GroupVersions``, mapping or None per prompt) overrides the report's own fields
    for its group. A synchronous trainer sends none (each report is then one version newer)."""

    version_start: int | None = None
    version_end: int | None = None
    selected_version: int | None = None
    fate: GroupFate | None = None
    groups: Sequence[GroupVersions | Mapping[str, Any] | None] | None = None

    def fields(self) -> dict[str, Any]:
        """The ``UpdateRequest`` fields, groups as ``GroupVersions``."""
        groups = None
        if self.groups is not None:
            groups = [
                g if g is None or isinstance(g, GroupVersions) else GroupVersions(**g)
                for g in self.groups
            ]
        return {
            "version_start": self.version_start,
            "version_end": self.version_end,
            "selected_version": self.selected_version,
            "fate": self.fate,
            "groups": groups,
        }

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set, as plain JSON (``ReportVersions(**d)`` reads it back):
        for a report's idempotency key and a queued report's checkpoint."""
        out = {k: v for k, v in self.fields().items() if v is not None and k != "groups"}
        if self.groups is not None:
            out["groups"] = [
                None if g is None else g.model_dump(exclude_none=True)
                for g in self.fields()["groups"]
            ]
        return out


@dataclass(frozen=True, kw_only=True)
class Retries:
    """Retry policy: jittered exponential backoff between ``initial`` and ``maximum`` seconds.

    Retried: connection errors, timeouts, 408, 429 and 5xx (409 only while the service
    reports the same idempotency key still in progress). ``Retry-After`` is honoured up
    to ``maximum``. A 404 "does not exist" for a run this client created less than
    ``created_run_grace`` seconds ago is retried too: behind a load balancer, a replica
    other than the one that created it may not know the run yet. A 404 that says the run
    was deleted is never retried.
    """

    max_retries: int = 4
    initial: float = 0.5
    maximum: float = 8.0
    created_run_grace: float = 5.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and (after := _retry_after(response)) is not None:
            return min(after, self.maximum)
        base = min(self.initial * 2.0**attempt, self.maximum)
        return base * (0.75 + 0.25 * random.random())


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _ignore_body(content: bytes) -> None:
    return None


@dataclass(frozen=True)
class _Call(Generic[_T]):
    """One logical call: built once, so every retry sends the same body and headers
    (in particular the same ``Idempotency-Key``)."""

    method: str
    path: str
    parse: Callable[[bytes], _T]
    content: str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry: bool = True
    accept: frozenset[int] | None = None
    """Statuses parsed as an answer; ``None`` means any 2xx."""
    timeout: float | None = None
    """Seconds per attempt for this call; ``None``: the client's timeout."""
    retries: Retries | None = None
    """Retry policy for this call; ``None``: the client's."""
    run: str | None = None
    """The run the call addresses (for the 404 grace after this client created it)."""


@dataclass(frozen=True)
class _Backoff:
    """Wait this long, then send the call again."""

    seconds: float


class _Attempts:
    """The retry state of one ``_Call``: after each attempt, ``judge`` says return this
    response, or back off and try again, or raises the final connection error."""

    def __init__(
        self,
        call: _Call[_T],
        retries: Retries,
        base_url: httpx.URL,
        created_at: float | None = None,
    ) -> None:
        self.path = f"{call.method} {call.path}"
        self.retries = retries
        self.base_url = base_url
        self.limit = retries.max_retries + 1 if call.retry else 1
        self.number = 0
        self.grace_until = None if created_at is None else created_at + retries.created_run_grace
        """Until when a 404 for the call's run is retried (this client created it)."""

    def judge(
        self, request: httpx.Request, result: httpx.Response | httpx.TransportError
    ) -> httpx.Response | _Backoff:
        attempt, self.number = self.number, self.number + 1
        last = self.number >= self.limit
        if isinstance(result, httpx.TransportError):
            if not last:
                return _Backoff(self.retries.delay(attempt, None))
            if isinstance(result, httpx.TimeoutException):
                raise APITimeoutError(f"timed out: {self.path}", request=request) from result
            raise APIConnectionError(
                f"cannot reach Sweetspot at {self.base_url}: {result}", request=request
            ) from result
        if result.status_code == 404 and not last and self._young_run(result):
            return _Backoff(self.retries.delay(attempt, None))
        if last or result.status_code not in _RETRY_STATUS:
            return result
        if result.status_code == 409 and "in progress" not in result.text:
            return result
        return _Backoff(self.retries.delay(attempt, result))

    def _young_run(self, result: httpx.Response) -> bool:
        """A 404 for a run this client just created, not one saying it was deleted."""
        if self.grace_until is None or time.monotonic() >= self.grace_until:
            return False
        return "does not exist" in result.text and "deleted" not in result.text


class BaseClient(Generic[_HttpT]):
    """State and per-endpoint request descriptions shared by both clients.

    Subclasses add one ``_execute(call)`` that sends, sleeps on ``_Backoff`` and parses, and
    one public method per endpoint that runs the matching ``_Call``.
    """

    def __init__(self, *, http: _HttpT, retries: Retries | None, run: str) -> None:
        self.run = run
        self.retries = retries or Retries()
        self._http = http
        self._created: dict[str, float] = {}
        """Run name -> ``time.monotonic()`` when this client created it."""

    @staticmethod
    def _headers(api_key: str | None) -> dict[str, str]:
        headers = {"User-Agent": "sweetspot-client"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def _attempts(self, call: _Call[_T]) -> _Attempts:
        created = self._created.get(call.run) if call.run is not None else None
        return _Attempts(call, call.retries or self.retries, self._http.base_url, created)

    def _created_run(self, info: RunInfo) -> RunInfo:
        """Remember when this client created ``info``'s run (see ``Retries``)."""
        self._created[info.name] = time.monotonic()
        return info

    def _build_request(self, call: _Call[_T]) -> httpx.Request:
        timeout = self._http.timeout if call.timeout is None else httpx.Timeout(call.timeout)
        return self._http.build_request(
            call.method, call.path, content=call.content, headers=call.headers, timeout=timeout
        )

    @staticmethod
    def _parse(call: _Call[_T], response: httpx.Response) -> _T:
        """The parsed answer; a body that does not parse (pydantic's ``ValidationError`` is a
        ``ValueError``) raises ``APIResponseValidationError``, never a foreign exception."""
        ok = response.is_success if call.accept is None else response.status_code in call.accept
        if not ok:
            raise status_error(response)
        try:
            return call.parse(response.content)
        except ValueError as exc:
            request = response.request
            kind = response.headers.get("content-type", "no content type")
            raise APIResponseValidationError(
                f"{response.status_code} from {request.method} {request.url.path} is not a "
                f"Sweetspot answer ({kind}: {response.text[:200]!r}); is {request.url.host} "
                f"the service, not a proxy's page? ({type(exc).__name__})",
                response=response,
            ) from exc

    @staticmethod
    def _post(
        path: str,
        body: BaseModel,
        parse: Callable[[bytes], _T],
        headers: dict[str, str] | None = None,
        *,
        exclude_none: bool = False,
    ) -> _Call[_T]:
        headers = {**(headers or {}), "Content-Type": "application/json"}
        run = getattr(body, "run", None)
        # Fields added later (features, policy versions; feature_width and from through
        # exclude_none) are left out when unset, so a request that does not use them is one
        # a service from before them accepts.
        unset = {name for name in _LATER_FIELDS if getattr(body, name, None) is None}
        content = body.model_dump_json(exclude_none=exclude_none, exclude=unset or None)
        return _Call("POST", path, parse, content=content, headers=headers, run=run)

    def _score(
        self,
        prompts: list[str],
        posterior: bool = True,
        features: FeatureVectors | None = None,
        truncate: bool = False,
        policy_version: int | None = None,
    ) -> _Call[ScoreResponse]:
        body = ScoreRequest(
            prompts=prompts,
            run=self.run,
            posterior=posterior,
            features=feature_rows(features),
            truncate=truncate,
            policy_version=policy_version,
        )
        return self._post("/v1/score", body, ScoreResponse.model_validate_json)

    def _select(
        self,
        prompts: list[str],
        m: int,
        tau: float,
        seed: int | None,
        rule: SelectionRule,
        epsilon: float,
        group_size: int = 8,
        posterior: bool = True,
        timeout: float | None = None,
        retries: Retries | None = None,
        features: FeatureVectors | None = None,
        policy_version: int | None = None,
        lease_s: float | None = None,
    ) -> _Call[SelectResponse]:
        body = SelectRequest(
            prompts=prompts,
            m=m,
            tau=tau,
            seed=seed,
            rule=rule,
            epsilon=epsilon,
            group_size=group_size,
            posterior=posterior,
            run=self.run,
            features=feature_rows(features),
            policy_version=policy_version,
            lease_s=lease_s,
        )
        call = self._post("/v1/select", body, SelectResponse.model_validate_json)
        return dataclasses.replace(call, timeout=timeout, retries=retries)

    def _update(
        self,
        prompts: list[str],
        rewards: list[list[float]],
        steps: int | None,
        idempotency_key: str | None,
        features: FeatureVectors | None = None,
        versions: ReportVersions | None = None,
    ) -> _Call[UpdateResponse]:
        body = UpdateRequest(
            prompts=prompts,
            rewards=rewards,
            steps=steps,
            run=self.run,
            features=feature_rows(features),
            **(versions.fields() if versions is not None else {}),
        )
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return self._post("/v1/update", body, UpdateResponse.model_validate_json, headers)

    def _stats(self, prompts: list[str]) -> _Call[StatsResponse]:
        body = StatsRequest(prompts=prompts, run=self.run)
        return self._post("/v1/stats", body, StatsResponse.model_validate_json)

    def _create_run(
        self, name: str, from_: str | None = None, feature_width: int | None = None
    ) -> _Call[RunInfo]:
        body = RunCreate.model_validate(
            {"name": name, "from": from_, "feature_width": feature_width}
        )
        # No "from": null for a plain create: services before warm starts refuse the field.
        return self._post("/v1/runs", body, RunInfo.model_validate_json, exclude_none=True)

    @staticmethod
    def _list_runs() -> _Call[RunList]:
        return _Call("GET", "/v1/runs", RunList.model_validate_json)

    @staticmethod
    def _get_run(name: str) -> _Call[RunInfo]:
        return _Call("GET", f"/v1/runs/{name}", RunInfo.model_validate_json, run=name)

    @staticmethod
    def _calibration(name: str) -> _Call[CalibrationResponse]:
        return _Call(
            "GET", f"/v1/runs/{name}/calibration", CalibrationResponse.model_validate_json, run=name
        )

    @staticmethod
    def _export_run(name: str) -> _Call[bytes]:
        return _Call("GET", f"/v1/runs/{name}/export", bytes, run=name)

    @staticmethod
    def _import_run(name: str, data: bytes) -> _Call[RunInfo]:
        headers = {"Content-Type": "application/octet-stream"}
        return _Call("PUT", f"/v1/runs/{name}/import", RunInfo.model_validate_json, data, headers)

    @staticmethod
    def _delete_run(name: str) -> _Call[None]:
        return _Call("DELETE", f"/v1/runs/{name}", _ignore_body)

    @staticmethod
    def _health() -> _Call[HealthResponse]:
        """Not retried, and a 503 is an answer: it says the service is still loading."""
        return _Call(
            "GET",
            "/readyz",
            HealthResponse.model_validate_json,
            retry=False,
            accept=frozenset({200, 503}),
        )

    @staticmethod
    def _ready(
        health: HealthResponse | None, deadline: float, timeout: float
    ) -> HealthResponse | None:
        """``health`` once ``wait_ready`` may return it, ``None`` to poll again (``health`` is
        ``None`` when unreachable); raises when the service failed to load or time is up."""
        if health is not None and health.ready:
            return health
        if health is not None and health.status == "failed":
            raise RuntimeError(f"Sweetspot service failed to load: {health.detail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Sweetspot service not ready after {timeout:.0f}s")
        return None
