"""Bearer API keys: which key may do what, on which runs, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Access = Literal["public", "metrics", "read", "write"]
READ_ONLY_POSTS = ("/v1/score", "/v1/select", "/v1/stats")
"""POST routes that only read the model or the store: a read key suffices."""
METRICS_PATH = "/metrics"
_RANK: dict[Access, int] = {"public": 0, "metrics": 1, "read": 2, "write": 3}


def required_access(method: str, path: str, public_paths: Iterable[str]) -> Access:
    """Scoring, statistics and GETs need a read key; the rest, unless public, a write key;
    /metrics (when not public) any key, a metrics-only key included."""
    if path in public_paths:
        return "public"
    if path == METRICS_PATH and method in ("GET", "HEAD"):
        return "metrics"
    if method in ("GET", "HEAD", "OPTIONS") or path in READ_ONLY_POSTS:
        return "read"
    return "write"


def allows(have: Access, need: Access) -> bool:
    """Whether a key granting ``have`` may do what needs ``need`` (write > read > metrics)."""
    return _RANK[have] >= _RANK[need]


class RunKey(BaseModel):
    """A key bound to some runs: ``{"key": ..., "runs": ["team-a-*", "shared"], "access":
    "write"}``. A pattern is a run name or a prefix ending in ``*``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: SecretStr = Field(min_length=16)
    runs: tuple[str, ...] = Field(min_length=1, max_length=256)
    access: Literal["read", "write"] = "write"


@dataclass(frozen=True)
class Grant:
    """What a request's key allows: its access, and the runs it covers (None: every run)."""

    access: Access
    runs: tuple[str, ...] | None = None

    def covers(self, run: str) -> bool:
        if self.runs is None:
            return True
        return any(run.startswith(p[:-1]) if p.endswith("*") else run == p for p in self.runs)


ALL_RUNS = Grant("write")
"""The grant of every request when no key is configured."""
GRANT = "sweetspot_grant"
"""Where ``AuthMiddleware`` leaves a request's ``Grant`` in the ASGI scope's state."""


class KeyRing:
    def __init__(
        self,
        write_keys: list[SecretStr],
        read_keys: list[SecretStr],
        metrics_keys: list[SecretStr] | None = None,
        run_keys: Sequence[RunKey] = (),
    ) -> None:
        self._write = [k.get_secret_value().encode() for k in write_keys]
        self._read = [k.get_secret_value().encode() for k in read_keys]
        self._metrics = [k.get_secret_value().encode() for k in metrics_keys or []]
        self._runs = [(k.key.get_secret_value().encode(), k) for k in run_keys]

    @property
    def enabled(self) -> bool:
        return bool(self._write or self._read or self._metrics or self._runs)

    def grant_of(self, token: bytes) -> Grant | None:
        """What ``token`` grants, or None. Every key is compared, so timing leaks nothing."""
        write = any([hmac.compare_digest(token, k) for k in self._write])
        read = any([hmac.compare_digest(token, k) for k in self._read])
        metrics = any([hmac.compare_digest(token, k) for k in self._metrics])
        scoped = [key for secret, key in self._runs if hmac.compare_digest(token, secret)]
        if write:
            return Grant("write")
        if read:
            return Grant("read")
        if scoped:
            return Grant(scoped[0].access, scoped[0].runs)
        return Grant("metrics") if metrics else None

    def access_of(self, token: bytes) -> Access | None:
        grant = self.grant_of(token)
        return grant.access if grant else None


def bearer_token(authorization: bytes | None) -> bytes | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None
    return token.strip()
