"""Bounds at the edge (issue 31): a service admits every file it exports, reads a big body
only for the method that takes one, receives a bounded number of value-model files at once
(findings 12, 14), refuses a file that would not work (1, 11), and one report cannot
outweigh a run's history (finding 8)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import torch
from safetensors.torch import save as save_tensors

from sweetspot_client import SweetspotClient
from sweetspot_service.portable import pack, unpack
from sweetspot_trainer.service import embedded_service


def _gauge(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture(scope="module")
def one_import_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("imports") / "service.log"
    args = ["--max-concurrent-imports", "1", "--max-body-bytes", "65536"]
    with embedded_service(backbone="minilm", log_path=log, extra_args=args) as url:
        yield url


def test_only_a_put_gets_the_import_bound(one_import_url: str) -> None:
    """A GET (read key enough) with a body over the request bound is refused at once (413)
    instead of being buffered up to the file bound and then answered 405."""
    answer = httpx.request(
        "GET", f"{one_import_url}/v1/runs/x/import", content=b"0" * 2**20, timeout=60
    )
    assert answer.status_code == 413
    assert "request body exceeds 65536 bytes" in answer.json()["detail"]


def test_files_beyond_max_concurrent_imports_wait_their_turn(one_import_url: str) -> None:
    host = urlparse(one_import_url)
    arriving = socket.create_connection((host.hostname, host.port), timeout=60)
    try:
        head = (
            "PUT /v1/runs/slow/import HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
        )
        arriving.sendall(head.encode() + b"\0" * 1000)  # the rest never comes (yet)
        deadline = time.monotonic() + 60
        while _gauge(one_import_url, "sweetspot_request_bodies_reading") < 1:
            assert time.monotonic() < deadline, "the first file never started arriving"
            time.sleep(0.05)
        second = httpx.put(f"{one_import_url}/v1/runs/next/import", content=b"\0" * 4096)
        assert second.status_code == 429
        assert "max_concurrent_imports" in second.json()["detail"]
        assert second.headers["retry-after"] == "2"
    finally:
        arriving.close()
    deadline = time.monotonic() + 60
    while _gauge(one_import_url, "sweetspot_request_bodies_reading") > 0:
        assert time.monotonic() < deadline, "the abandoned file still holds its slot"
        time.sleep(0.05)
    third = httpx.put(f"{one_import_url}/v1/runs/next/import", content=b"\0" * 4096)
    assert third.status_code == 422  # its turn came: read, and refused as not a model file


def test_one_prompt_cannot_carry_more_than_max_rewards_per_prompt(one_import_url: str) -> None:
    """Finding 8: one prompt repeated with many rewards once moved every unseen prompt of its
    run from p̂ 0.21 to 0.998. Its repeats count together against the bound, and a refused
    update changes nothing."""
    with SweetspotClient(base_url=one_import_url, timeout=120) as client:
        client.create_run("weights")
    with SweetspotClient(base_url=one_import_url, timeout=120, run="weights") as client:
        client.update([f"What is {i} + {i}?" for i in range(8)], [[0.0, 1.0, 0.0, 0.0]] * 8)
        before = client.score(["What is 12 times 13?"])
        heavy = {"run": "weights", "prompts": ["What is 1 + 1?"] * 3, "rewards": [[1.0] * 100] * 3}
        answer = httpx.post(f"{one_import_url}/v1/update", json=heavy, timeout=120)
        assert answer.status_code == 422
        detail = answer.json()["detail"]
        assert "prompts[0] has 300 rewards" in detail and "max_rewards_per_prompt (256)" in detail
        after = client.score(["What is 12 times 13?"])
        assert after.model_version == before.model_version
        assert after.scores == before.scores
        ok = {"run": "weights", "prompts": ["What is 1 + 1?"], "rewards": [[1.0] * 256]}
        assert httpx.post(f"{one_import_url}/v1/update", json=ok, timeout=120).status_code == 200


def _crafted(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    state, about = unpack(data)
    change(state)
    return pack(state, about)


def _short_errors(state: dict[str, Any]) -> None:
    state["ridge"]["errors"] = state["ridge"]["errors"][:3]  # loads, then every update raises


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_short_errors, "does not load or learn"),
        (lambda s: s.update(version=-5), "at version -5"),
        (lambda s: s.update(version=1e30), "at version 1e+30"),
        (lambda s: s.update(version=1000), "at version 1000"),
        (lambda s: s.pop("version"), "at version None"),
    ],
    ids=["short-errors", "negative", "huge", "ahead", "no-version"],
)
def test_an_import_that_would_not_work_is_refused_and_harms_nothing(
    one_import_url: str, change: Callable[[dict[str, Any]], None], said: str
) -> None:
    """Finding 1 and 11: such files answered 201 and then failed their run, or wedged every
    run's updates (a short ridge error table), or silently dropped the model."""
    with SweetspotClient(base_url=one_import_url, timeout=120) as client:
        client.update(["What is 2 + 2?"], [[1.0, 0.0]])
        crafted = _crafted(client.export_run("default"), change)
        answer = httpx.put(f"{one_import_url}/v1/runs/crafted/import", content=crafted)
        assert answer.status_code == 422, answer.text
        assert said in answer.json()["detail"]
        assert "crafted" not in [r.name for r in client.list_runs().runs]
        version = client.update(["What is 3 + 3?"], [[0.0, 1.0]]).model_version
        assert client.score(["What is 3 + 3?"]).model_version == version  # updates still apply


def test_metadata_that_is_not_an_object_is_a_422_not_a_500(one_import_url: str) -> None:
    crafted = save_tensors({"t0": torch.zeros(1)}, metadata={"sweetspot": json.dumps([1, 2])})
    answer = httpx.put(f"{one_import_url}/v1/runs/crafted/import", content=crafted)
    assert answer.status_code == 422
    assert "not a Sweetspot value-model file" in answer.json()["detail"]


@pytest.mark.slow
def test_a_full_mode_export_imports_into_its_own_service(tmp_path: Path) -> None:
    """MiniLM in full mode exports about 259 MiB (weights and AdamW moments), over the old
    fixed 256 MiB bound: the default bound follows the backbone."""
    args = ["--train-mode", "full"]
    with (
        embedded_service(backbone="minilm", log_path=tmp_path / "log", extra_args=args) as url,
        SweetspotClient(base_url=url, timeout=600) as client,
    ):
        client.update(["What is 2 + 2?", "What is 3 + 5?"], [[1.0, 1.0], [0.0, 0.0]])
        data = client.export_run("default")
        assert len(data) > 256 * 2**20
        assert client.import_run("copy", data).model_version == 0
        with SweetspotClient(base_url=url, timeout=600, run="copy") as copy:
            assert len(copy.score(["What is 2 + 2?"]).scores) == 1
