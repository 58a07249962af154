"""Who may call what: the access each path needs and each key grants."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from sweetspot_service.core.config import Settings
from sweetspot_service.core.security import KeyRing, allows, required_access

PUBLIC = ("/healthz", "/readyz")


@pytest.mark.parametrize(
    ("method", "path", "need"),
    [
        ("GET", "/healthz", "public"),
        ("GET", "/metrics", "metrics"),
        ("HEAD", "/metrics", "metrics"),
        ("POST", "/metrics", "write"),
        ("POST", "/v1/score", "read"),
        ("GET", "/v1/runs", "read"),
        ("POST", "/v1/update", "write"),
        ("DELETE", "/v1/runs/a", "write"),
    ],
)
def test_required_access(method: str, path: str, need: str) -> None:
    assert required_access(method, path, PUBLIC) == need


def test_each_key_grants_its_own_level_and_what_is_below_it() -> None:
    ring = KeyRing([SecretStr("w")], [SecretStr("r")], [SecretStr("m")])
    assert [ring.access_of(k) for k in (b"w", b"r", b"m", b"x")] == [
        "write",
        "read",
        "metrics",
        None,
    ]
    assert allows("write", "read") and allows("read", "metrics") and allows("metrics", "metrics")
    assert not allows("metrics", "read") and not allows("read", "write")


def test_a_metrics_key_takes_metrics_out_of_the_public_paths() -> None:
    assert "/metrics" in Settings(api_keys=[SecretStr("w")]).open_paths
    keyed = Settings(api_keys=[SecretStr("w")], metrics_api_keys=[SecretStr("m")])
    assert keyed.open_paths == ["/healthz", "/readyz"]


def test_a_metrics_key_alone_is_refused_with_what_to_set() -> None:
    with pytest.raises(ValidationError, match="set SWEETSPOT_API_KEYS"):
        Settings(metrics_api_keys=[SecretStr("m")])
