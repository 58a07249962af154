"""sweetspot-serve with the in-memory store and a checkpoint folder, restarted.

The checkpoint survives the process; the in-memory log and idempotency records do not. A
restart must continue from the checkpoint: the next update is the next version, applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from sweetspot_client import NotFoundError, Retries, SweetspotClient
from sweetspot_service.testing import ServiceProcess, wait_until

ReadOnly = Callable[[Path], AbstractContextManager[None]]  # conftest.read_only_folder

PROMPTS = ["What is 2 + 2?", "Name a prime.", "Sum 1..10."]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    args = ["--backbone", "minilm", "--checkpoint-dir", str(tmp_path / "ckpt")]
    args += ["--update-timeout-s", "20"]  # the defect answered 503 "not applied yet" then
    process = ServiceProcess(args, tmp_path / "service.log").start()
    yield process
    process.kill()


def client(service: ServiceProcess, run: str = "default") -> SweetspotClient:
    """No retries: a 503 "not applied yet" fails the test instead of being retried."""
    return SweetspotClient(
        base_url=service.url, timeout=60, retries=Retries(max_retries=0), run=run
    )


def test_a_restart_continues_after_the_checkpoint(service: ServiceProcess) -> None:
    with client(service) as default, client(service, "exp") as exp:
        assert default.update(PROMPTS[:1], [[1.0]], idempotency_key="d1").model_version == 1
        exp.create_run("exp")
        assert exp.update(PROMPTS[1:], [[0.0], [1.0]], idempotency_key="e1").model_version == 1

    service.stop()  # SIGTERM: both runs are checkpointed at version 1
    service.start()

    with client(service) as default, client(service, "exp") as exp:
        info = default.get_run("default")
        assert (info.model_version, info.checkpointed_version, info.error) == (1, 1, None)
        assert default.update(PROMPTS[:1], [[0.0]], idempotency_key="d2").model_version == 2
        assert default.get_run("default").pending_updates == 0

        # The in-memory store forgot the run; creating it again restores its checkpoint.
        with pytest.raises(NotFoundError):
            exp.get_run("exp")
        assert exp.create_run("exp").model_version == 1
        assert exp.update(PROMPTS[1:], [[1.0], [1.0]], idempotency_key="e2").model_version == 2

        # Idempotency records lived in the old process only: a retry of an update applied
        # before the restart is a new update here (exactly-once across restarts needs Redis).
        assert default.update(PROMPTS[:1], [[1.0]], idempotency_key="d1").model_version == 3

    service.stop()  # and once more, from a checkpoint written after a restart
    service.start()
    with client(service) as default:
        assert default.get_run("default").model_version == 3
        assert default.update(PROMPTS[:1], [[1.0]], idempotency_key="d4").model_version == 4


def test_a_run_deleted_while_its_checkpoints_stay_does_not_come_back(
    tiny_llama: Path, tmp_path: Path, read_only_folder: ReadOnly
) -> None:
    """Issue 31.5: deleted while its folder was read-only, the run came back after a restart
    with its old model (created again, it continued the old checkpoint)."""
    ckpt = tmp_path / "ckpt"
    args = ["--backbone", str(tiny_llama), "--checkpoint-dir", str(ckpt)]
    service = ServiceProcess([*args, "--checkpoint-every", "1"], tmp_path / "x.log").start()
    try:
        with client(service, "x") as x:
            x.create_run("x")
            for i in range(2):
                x.update(PROMPTS[:2], [[1.0], [0.0]], idempotency_key=f"x{i}")
            wait_until(lambda: x.get_run("x").checkpointed_version == 2, "checkpoint", timeout=30)
        folder = ckpt / "runs" / "x"
        with read_only_folder(folder):
            assert httpx.delete(f"{service.url}/v1/runs/x").status_code == 204
            service.kill()
            service.start()
            with client(service, "x") as x:
                assert x.create_run("x").model_version == 0  # not the deleted model
                assert x.get_run("x").model_version == 0
            problems = httpx.get(f"{service.url}/readyz").json()["problems"]
            assert any("'x'" in p and "deleted" in p for p in problems), problems
            assert sorted(folder.rglob("*.pt")) != []  # the old files really are still there

        def collected() -> bool:
            problems = httpx.get(f"{service.url}/readyz").json()["problems"]
            return not any("deleted" in p for p in problems)

        wait_until(collected, "the deleted run's checkpoints removed once writable", timeout=30)
        assert not (ckpt / "deleted" / "x").exists()
        with client(service, "x") as x:
            assert x.update(PROMPTS[:1], [[1.0]], idempotency_key="n1").model_version == 1
    finally:
        service.kill()
