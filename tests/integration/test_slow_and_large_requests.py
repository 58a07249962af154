"""Clients that send slowly or too much: real sockets against a real sweetspot-serve."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sweetspot_service.testing import ServiceProcess, wait_until

WRITE, READ = "write-key-0123456789", "read-key-0123456789"
SCORE = {"prompts": ["What is 1 + 1?"]}
UPDATE = {"prompts": ["What is 1 + 1?"], "rewards": [[1.0]]}
READING = "sweetspot_request_bodies_reading"


def admitted(kind: str) -> str:
    return f'sweetspot_admitted_requests{{kind="{kind}"}}'


@pytest.fixture(scope="module")
def service(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """Keys, two admission slots per class, and a body timeout no test reaches."""
    log = tmp_path_factory.mktemp("edge") / "service.log"
    args = ["--backbone", str(tiny_llama), "--max-queued-scores", "2"]
    args += ["--max-queued-updates", "2", "--body-read-timeout-s", "600"]
    env = {"SWEETSPOT_API_KEYS": json.dumps([WRITE]), "SWEETSPOT_READ_API_KEYS": json.dumps([READ])}
    process = ServiceProcess(args, log, env=env).start()
    yield process
    process.kill()


def start_slow_request(port: int, path: str, key: str) -> socket.socket:
    """Headers declaring a 200-byte body, then only its first bytes: the rest never comes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = f"POST {path} HTTP/1.1\r\nHost: sweetspot\r\nAuthorization: Bearer {key}\r\n"
    head += "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    sock.sendall(head.encode() + b'{"prompts": [')
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the service sends until it closes the connection (socket timeout: 60 s)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def post(url: str, path: str, key: str, body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=60)


def test_slow_bodies_hold_no_admission_slot(service: ServiceProcess) -> None:
    slow = [start_slow_request(service.port, "/v1/score", READ) for _ in range(4)]
    slow += [start_slow_request(service.port, "/v1/update", WRITE) for _ in range(4)]
    try:
        # Either every slow request is still sending its body, or (the old behaviour) the
        # first two of each class took the admission slots before their bodies arrived.
        wait_until(
            lambda: (
                service.metric(READING) == 8
                or (service.metric(admitted("score")) == service.metric(admitted("update")) == 2)
            ),
            "the slow requests reached the service",
            timeout=60,
        )
        for _ in range(3):  # more requests than slots, while eight bodies are still trickling
            answer = post(service.url, "/v1/score", READ, SCORE)
            assert answer.status_code == 200, answer.text
            answer = post(service.url, "/v1/update", WRITE, UPDATE)
            assert answer.status_code == 200, answer.text
        assert service.metric(admitted("score")) == service.metric(admitted("update")) == 0
        assert service.metric(READING) == 8
    finally:
        for sock in slow:
            sock.close()
    wait_until(lambda: service.metric(READING) == 0, "slow requests dropped", timeout=60)


def test_a_body_that_does_not_arrive_in_time_gets_408(tiny_llama: Path, tmp_path: Path) -> None:
    args = ["--backbone", str(tiny_llama), "--body-read-timeout-s", "1"]
    process = ServiceProcess(args, tmp_path / "service.log").start()
    try:
        with start_slow_request(process.port, "/v1/score", "no-key-needed") as sock:
            answer = read_until_closed(sock)  # the service must answer, then hang up
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"body_read_timeout_s" in answer
        assert process.metric('sweetspot_rejected_requests_total{reason="body_timeout"}') == 1
        assert httpx.post(f"{process.url}/v1/score", json=SCORE).status_code == 200
    finally:
        process.kill()


def test_oversized_headers_are_refused_while_they_arrive(service: ServiceProcess) -> None:
    header_bytes = 64 * 2**20  # 1,024 times the default max_header_bytes
    rss_before = service.rss_bytes()
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", service.port), timeout=60) as sock:
        try:
            sock.sendall(b"GET /v1/runs HTTP/1.1\r\nHost: sweetspot\r\nAuthorization: Bearer ")
            while sent < header_bytes:
                sock.sendall(b"x" * 2**20)
                sent += 2**20
            sock.sendall(b"\r\n\r\n")
            answer = read_until_closed(sock)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while the header was still being sent: refused
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:300]
    assert sent < header_bytes  # the service stopped reading long before the end
    assert service.rss_bytes() - rss_before < header_bytes / 4
    assert httpx.get(f"{service.url}/healthz").status_code == 200


@pytest.mark.parametrize("kib", [70, 120])
def test_oversized_headers_in_one_write_are_refused(service: ServiceProcess, kib: int) -> None:
    """Issue 19.13: headers over the 64 KiB bound that arrive in one read used to complete
    inside the parser, before the bound was checked, and reach the app."""
    head = (
        "GET /v1/runs HTTP/1.1\r\nHost: sweetspot\r\n"
        f"Authorization: Bearer {READ}\r\nX-Padding: {'x' * kib * 2**10}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=60) as sock:
        sock.sendall(head)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:300]
    assert b"max_header_bytes" in answer
    small = httpx.get(f"{service.url}/v1/runs", headers={"Authorization": f"Bearer {READ}"})
    assert small.status_code == 200  # the bound is per request, and the service serves on


def test_a_large_select_is_scored_in_parts(tiny_llama: Path, tmp_path: Path) -> None:
    """Issue 19.7: one large select held every other score for its whole forward pass; now
    a request over ``--batch-max-prompts`` or ``--batch-max-chars`` is scored in parts, each
    its own forward call, so other requests interleave (``tests/unit/test_batcher.py``)."""
    args = ["--backbone", str(tiny_llama), "--batch-max-prompts", "4"]
    args += ["--batch-max-chars", "120", "--score-cache-ttl-s", "0"]
    process = ServiceProcess(args, tmp_path / "service.log").start()
    try:
        calls = "sweetspot_score_batch_prompts_count"
        prompts = [f"What is {i} + {i}?" for i in range(10)]  # 13-14 chars: 4 per part
        before = process.metric(calls) or 0.0
        answer = httpx.post(
            f"{process.url}/v1/select", json={"prompts": prompts, "m": 3}, timeout=60
        )
        assert answer.status_code == 200 and len(answer.json()["indices"]) == 3
        assert len(answer.json()["candidate_scores"]) == 10
        assert process.metric(calls) == before + 3  # parts of 4, 4 and 2 prompts
        long = ["x" * 100 + str(i) for i in range(3)]  # over 120 characters two at a time
        before = process.metric(calls) or 0.0
        assert httpx.post(f"{process.url}/v1/score", json={"prompts": long}).status_code == 200
        assert process.metric(calls) == before + 3
    finally:
        process.kill()
