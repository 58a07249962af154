"""HTTP client for the Sweetspot service."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TypeVar

import httpx
from pydantic import BaseModel

from sweetspot_client._exceptions import APIConnectionError, APITimeoutError, status_error
from sweetspot_client.schema import (
    DEFAULT_RUN,
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

_R = TypeVar("_R", bound=BaseModel)
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class Retries:
    """Retry policy: jittered exponential backoff between ``initial`` and ``maximum`` seconds.

    Retried: connection errors, timeouts, 408, 429 and 5xx (409 only while the service
    reports the same idempotency key still in progress). ``Retry-After`` is honoured up
    to ``maximum``.
    """

    max_retries: int = 4
    initial: float = 0.5
    maximum: float = 8.0

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


class SweetspotClient:
    """Talks to a Sweetspot service: score prompts, select near-τ prompts, report rewards.

    Example::

        with SweetspotClient(base_url="http://localhost:8000") as sweetspot:
            chosen = sweetspot.select(candidates, m=8)
            ...
            sweetspot.update([candidates[i] for i in chosen.indices], rewards)
    """

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1:8000",
        timeout: float | httpx.Timeout = 60.0,
        api_key: str | None = None,
        retries: Retries | None = None,
        transport: httpx.BaseTransport | None = None,
        run: str = DEFAULT_RUN,
    ) -> None:
        self.run = run
        headers = {"User-Agent": "sweetspot-client"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.retries = retries or Retries()
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, headers=headers, transport=transport
        )

    def score(self, prompts: list[str]) -> ScoreResponse:
        """Predicted success probability for each prompt under the current policy."""
        body = ScoreRequest(prompts=prompts, run=self.run)
        return self._request("POST", "/v1/score", body, ScoreResponse)

    def select(
        self,
        prompts: list[str],
        m: int,
        *,
        tau: float = 0.5,
        seed: int | None = None,
        rule: SelectionRule = "nearest",
        epsilon: float = 0.2,
    ) -> SelectResponse:
        """The ``m`` prompts the selection ``rule`` keeps (default: p̂ closest to ``tau``)."""
        body = SelectRequest(
            prompts=prompts, m=m, tau=tau, seed=seed, rule=rule, epsilon=epsilon, run=self.run
        )
        return self._request("POST", "/v1/select", body, SelectResponse)

    def update(
        self,
        prompts: list[str],
        rewards: list[list[float]],
        *,
        steps: int | None = None,
        idempotency_key: str | None = None,
    ) -> UpdateResponse:
        """Report observed rewards (one list per prompt, each in [0, 1]); trains the value model.

        One idempotency key is used for all retries of this call, so a retried update is
        applied at most once by services that honour it.
        """
        body = UpdateRequest(prompts=prompts, rewards=rewards, steps=steps, run=self.run)
        key = idempotency_key or str(uuid.uuid4())
        return self._request(
            "POST", "/v1/update", body, UpdateResponse, headers={"Idempotency-Key": key}
        )

    def stats(self, prompts: list[str]) -> StatsResponse:
        """Observed reward statistics of each prompt in this run (count, mean, last version)."""
        return self._request(
            "POST", "/v1/stats", StatsRequest(prompts=prompts, run=self.run), StatsResponse
        )

    def create_run(self, name: str) -> RunInfo:
        """A new run (its own value model) on the service; use it with ``run=name``."""
        return self._request("POST", "/v1/runs", RunCreate(name=name), RunInfo)

    def list_runs(self) -> RunList:
        return self._request("GET", "/v1/runs", None, RunList)

    def get_run(self, name: str) -> RunInfo:
        return self._request("GET", f"/v1/runs/{name}", None, RunInfo)

    def delete_run(self, name: str) -> None:
        response = self._send("DELETE", f"/v1/runs/{name}", None, {}, retry=True)
        if not response.is_success:
            raise status_error(response)

    def health(self) -> HealthResponse:
        """Liveness plus readiness; never raises for a 503 'still loading' answer."""
        response = self._send("GET", "/readyz", None, {}, retry=False)
        if response.status_code in (200, 503):
            return HealthResponse.model_validate_json(response.content)
        raise status_error(response)

    def wait_ready(self, timeout: float = 300.0, interval: float = 0.5) -> HealthResponse:
        """Poll readiness until the model is loaded; raise ``TimeoutError`` past ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                health = self.health()
                if health.ready:
                    return health
                if health.status == "failed":
                    raise RuntimeError(f"Sweetspot service failed to load: {health.detail}")
            except APIConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Sweetspot service not ready after {timeout:.0f}s")
            time.sleep(interval)

    def _request(
        self,
        method: str,
        path: str,
        body: BaseModel | None,
        response_model: type[_R],
        headers: dict[str, str] | None = None,
    ) -> _R:
        content = body.model_dump_json() if body is not None else None
        response = self._send(method, path, content, headers or {}, retry=True)
        if response.is_success:
            return response_model.model_validate_json(response.content)
        raise status_error(response)

    def _send(
        self, method: str, path: str, content: str | None, headers: dict[str, str], *, retry: bool
    ) -> httpx.Response:
        if content is not None:
            headers = {**headers, "Content-Type": "application/json"}
        attempts = self.retries.max_retries + 1 if retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            request = self._http.build_request(method, path, content=content, headers=headers)
            try:
                response = self._http.send(request)
            except httpx.TimeoutException as exc:
                if last:
                    raise APITimeoutError(f"timed out: {method} {path}", request=request) from exc
                time.sleep(self.retries.delay(attempt, None))
                continue
            except httpx.TransportError as exc:
                if last:
                    raise APIConnectionError(
                        f"cannot reach Sweetspot at {self._http.base_url}: {exc}", request=request
                    ) from exc
                time.sleep(self.retries.delay(attempt, None))
                continue
            if last or response.status_code not in _RETRY_STATUS:
                return response
            if response.status_code == 409 and "in progress" not in response.text:
                return response
            time.sleep(self.retries.delay(attempt, response))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SweetspotClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
