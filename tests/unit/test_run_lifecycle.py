"""Issue 19: the in-memory store's run lifecycle, in-process: a delete that cannot remove
the checkpoint folder answers 204 and reports it, and the run created again starts empty
(the leftover is never adopted, though the in-memory store adopts checkpoints after a
restart); once the folder is writable the leftover is removed."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from fastapi.testclient import TestClient

from sweetspot_service.core.config import Settings
from sweetspot_service.main import create_app
from sweetspot_service.testing import wait_until


def test_a_delete_with_a_read_only_checkpoint_folder_in_memory(
    tiny_llama: Path,
    tmp_path: Path,
    read_only_folder: Callable[[Path], AbstractContextManager[None]],
) -> None:
    folder = tmp_path / "ckpt"
    settings = Settings(
        backbone=str(tiny_llama),
        checkpoint_dir=folder,
        checkpoint_every=1,
        log_poll_interval_s=0.05,
    )
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, "ready", timeout=60)
        assert client.post("/v1/runs", json={"name": "x"}).status_code == 201
        update = {"prompts": ["p"], "rewards": [[1.0]], "run": "x"}
        assert client.post("/v1/update", json=update).json()["model_version"] == 1
        wait_until(lambda: list((folder / "runs" / "x").rglob("*.pt")) != [], "saved", timeout=30)

        with read_only_folder(folder / "runs" / "x"):
            assert client.delete("/v1/runs/x").status_code == 204
            assert client.get("/v1/runs/x").status_code == 404
            problems = client.get("/readyz").json()["problems"]
            assert any("'x'" in p and "deleted" in p for p in problems), problems
            created = client.post("/v1/runs", json={"name": "x"})
            assert created.status_code == 201 and created.json()["model_version"] == 0
            assert (
                client.post("/v1/stats", json={"prompts": ["p"], "run": "x"}).json()["stats"][0][
                    "count"
                ]
                == 0
            )

        def collected() -> bool:
            return not any("deleted" in p for p in client.get("/readyz").json()["problems"])

        wait_until(collected, "leftover removed", timeout=30)
        assert client.post("/v1/update", json=update).json()["model_version"] == 1
