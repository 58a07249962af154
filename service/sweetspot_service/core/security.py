"""Bearer API keys: which key may do what, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Literal

from pydantic import SecretStr

Access = Literal["public", "read", "write"]
READ_ONLY_POSTS = ("/v1/score", "/v1/select", "/v1/stats")
"""POST routes that only read the model or the store: a read key suffices."""


def required_access(method: str, path: str, public_paths: Iterable[str]) -> Access:
    """Scoring, statistics and GETs need a read key; the rest, unless public, a write key."""
    if path in public_paths:
        return "public"
    if method in ("GET", "HEAD", "OPTIONS") or path in READ_ONLY_POSTS:
        return "read"
    return "write"


class KeyRing:
    def __init__(self, write_keys: list[SecretStr], read_keys: list[SecretStr]) -> None:
        self._write = [k.get_secret_value().encode() for k in write_keys]
        self._read = [k.get_secret_value().encode() for k in read_keys]

    @property
    def enabled(self) -> bool:
        return bool(self._write or self._read)

    def access_of(self, token: bytes) -> Access | None:
        """The access ``token`` grants, or None. Every key is compared, so timing leaks nothing."""
        write = any([hmac.compare_digest(token, k) for k in self._write])
        read = any([hmac.compare_digest(token, k) for k in self._read])
        if write:
            return "write"
        return "read" if read else None


def bearer_token(authorization: bytes | None) -> bytes | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None
    return token.strip()
