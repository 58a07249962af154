"""Keys bound to runs: which runs a grant covers, and what a run key's setting refuses."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr, ValidationError

from sweetspot_service.core.config import Settings
from sweetspot_service.core.security import Grant, KeyRing, RunKey


def test_patterns_are_names_or_prefixes() -> None:
    grant = Grant("write", ("team-a-*", "shared"))
    assert grant.covers("team-a-1") and grant.covers("team-a-") and grant.covers("shared")
    assert not grant.covers("team-b-1") and not grant.covers("shared-2")
    assert not grant.covers("team-a") and Grant("read").covers("anything")


def test_the_ring_tells_a_run_key_from_unbound_keys() -> None:
    ring = KeyRing(
        [SecretStr("w" * 16)],
        [SecretStr("r" * 16)],
        run_keys=[RunKey(key=SecretStr("a" * 16), runs=("team-a-*",), access="read")],
    )
    assert ring.grant_of(b"w" * 16) == Grant("write")
    assert ring.grant_of(b"r" * 16) == Grant("read")
    assert ring.grant_of(b"a" * 16) == Grant("read", ("team-a-*",))
    assert ring.grant_of(b"x" * 16) is None


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"key": "short", "runs": ["a"]}, "at least 16"),
        ({"key": "k" * 16, "runs": []}, "at least 1"),
        ({"key": "k" * 16, "runs": ["a"], "access": "admin"}, "'read' or 'write'"),
        ({"key": "k" * 16, "runs": ["a"], "team": "x"}, "Extra inputs"),
    ],
)
def test_a_bad_run_key_setting_says_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, entry: dict[str, object], says: str
) -> None:
    monkeypatch.setenv("SWEETSPOT_RUN_KEYS", json.dumps([entry]))
    with pytest.raises(ValidationError, match=says):
        Settings()
