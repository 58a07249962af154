"""Bearer API keys: which key may do what, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Literal

from pydantic import SecretStr

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


class KeyRing:
    def __init__(
        self,
        write_keys: list[SecretStr],
        read_keys: list[SecretStr],
        metrics_keys: list[SecretStr] | None = None,
    ) -> None:
        self._write = [k.get_secret_value().encode() for k in write_keys]
        self._read = [k.get_secret_value().encode() for k in read_keys]
        self._metrics = [k.get_secret_value().encode() for k in metrics_keys or []]

    @property
    def enabled(self) -> bool:
        return bool(self._write or self._read or self._metrics)

    def access_of(self, token: bytes) -> Access | None:
        """The access ``token`` grants, or None. Every key is compared, so timing leaks nothing."""
        write = any([hmac.compare_digest(token, k) for k in self._write])
        read = any([hmac.compare_digest(token, k) for k in self._read])
        metrics = any([hmac.compare_digest(token, k) for k in self._metrics])
        if write:
            return "write"
        if read:
            return "read"
        return "metrics" if metrics else None


def bearer_token(authorization: bytes | None) -> bytes | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None
    return token.strip()
