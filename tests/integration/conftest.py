"""A real ``sweetspot-serve`` process on a free loopback port, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sweetspot_client import SweetspotClient
from sweetspot_trainer.service import embedded_service

LIMITS = ["--max-prompts-per-request", "64", "--max-prompt-chars", "2000"]
LIMITS += ["--max-body-bytes", "65536"]


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("service") / "service.log"
    with embedded_service(backbone="minilm", log_path=log, extra_args=LIMITS) as url:
        yield url


@pytest.fixture
def client(service_url: str) -> Iterator[SweetspotClient]:
    with SweetspotClient(base_url=service_url, timeout=30) as c:
        yield c
