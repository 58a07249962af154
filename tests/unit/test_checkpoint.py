"""Versioned checkpoint files: the newest wins, whoever writes last, and nothing is torn."""

from __future__ import annotations

from pathlib import Path

import torch

from sweetspot_service.checkpoint import (
    load_checkpoint,
    newest_version,
    remove_checkpoint,
    save_checkpoint,
)


def state(version: int) -> dict[str, object]:
    return {"version": version, "weight": torch.full((2,), float(version))}


def test_newest_checkpoint_is_loaded_and_older_files_pruned(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "r", state(3), "3-0")
    save_checkpoint(tmp_path, "r", state(5), "5-0")
    loaded = load_checkpoint(tmp_path, "r")
    assert loaded is not None
    model, applied = loaded
    assert model["version"] == 5 and applied == "5-0"
    assert [p.name for p in tmp_path.iterdir()] == ["r.v000000000005.pt"]


def test_a_lagging_writer_never_replaces_a_newer_checkpoint(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "r", state(10), "10-0")  # replica a
    save_checkpoint(tmp_path, "r", state(6), "6-0")  # replica b, behind, shares the folder
    assert newest_version(tmp_path, "r") == 10
    loaded = load_checkpoint(tmp_path, "r")
    assert loaded is not None and loaded[0]["version"] == 10 and loaded[1] == "10-0"


def test_runs_whose_names_extend_each_other_do_not_mix(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "x", state(2), "2-0")
    save_checkpoint(tmp_path, "x.v000000000009", state(1), "1-0")
    assert newest_version(tmp_path, "x") == 2
    remove_checkpoint(tmp_path, "x")
    assert load_checkpoint(tmp_path, "x") is None
    assert newest_version(tmp_path, "x.v000000000009") == 1


def test_a_checkpoint_from_an_earlier_release_still_loads(tmp_path: Path) -> None:
    legacy = tmp_path / "r.pt"
    torch.save({"format": 1, "applied_id": "4-0", "model": state(4)}, legacy)
    loaded = load_checkpoint(tmp_path, "r")
    assert loaded is not None and loaded[0]["version"] == 4
    assert newest_version(tmp_path, "r") is None  # not versioned by name
    save_checkpoint(tmp_path, "r", state(5), "5-0")
    assert not legacy.exists()


def test_no_checkpoint_yet(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path / "missing", "r") is None
    assert newest_version(tmp_path / "missing", "r") is None
