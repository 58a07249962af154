"""Versioned checkpoint files: the newest wins, whoever writes last, and nothing is torn."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sweetspot_service.checkpoint import (
    CheckpointLoadError,
    incarnations_on_disk,
    load_checkpoint,
    newest_version,
    remove_checkpoint,
    run_folder,
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
    assert [p.name for p in run_folder(tmp_path, "r").iterdir()] == ["v000000000005.pt"]


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


def test_no_run_name_reads_or_removes_another_runs_checkpoint(tmp_path: Path) -> None:
    """Issue 11.1: run ``default.v000000000126``'s legacy name ``<run>.pt`` was exactly
    ``default``'s versioned checkpoint; creating that run loaded it, deleting it removed it."""
    save_checkpoint(tmp_path, "default", state(126), "126-0")
    # The same file as the previous release wrote it, flat in the folder.
    torch.save(
        {"format": 1, "applied_id": "126-0", "model": state(126)},
        tmp_path / "default.v000000000126.pt",
    )
    crafted = "default.v000000000126"
    assert load_checkpoint(tmp_path, crafted) is None
    assert newest_version(tmp_path, crafted) is None
    remove_checkpoint(tmp_path, crafted)
    loaded = load_checkpoint(tmp_path, "default")
    assert loaded is not None and loaded[0]["version"] == 126
    assert (tmp_path / "default.v000000000126.pt").exists()
    # Each run's own checkpoints stay its own, whatever the two names.
    save_checkpoint(tmp_path, crafted, state(1), "1-0")
    loaded = load_checkpoint(tmp_path, "default")
    assert loaded is not None and loaded[0]["version"] == 126
    crafted_loaded = load_checkpoint(tmp_path, crafted)
    assert crafted_loaded is not None and crafted_loaded[0]["version"] == 1


def test_versioned_files_of_the_previous_release_still_load(tmp_path: Path) -> None:
    for version in (3, 7):
        torch.save(
            {"format": 1, "applied_id": f"{version}-0", "model": state(version)},
            tmp_path / f"r.v{version:012d}.pt",
        )
    assert newest_version(tmp_path, "r") == 7
    loaded = load_checkpoint(tmp_path, "r")
    assert loaded is not None and loaded[0]["version"] == 7
    save_checkpoint(tmp_path, "r", state(8), "8-0")  # the new layout takes over ...
    assert not list(tmp_path.glob("r.*.pt"))  # ... and prunes the flat files
    loaded = load_checkpoint(tmp_path, "r")
    assert loaded is not None and loaded[0]["version"] == 8


def test_incarnations_keep_apart_and_the_legacy_layout_still_loads(tmp_path: Path) -> None:
    """Issue 19: a run created again never reads, prunes or removes its predecessor's files."""
    save_checkpoint(tmp_path, "r", state(7), "7-0")  # legacy: runs/r/v….pt
    save_checkpoint(tmp_path, "r", state(3), "3-0", "00000000000000aa")
    save_checkpoint(tmp_path, "r", state(1), "1-0", "00000000000000bb")
    assert load_checkpoint(tmp_path, "r")[0]["version"] == 7  # type: ignore[index]
    assert load_checkpoint(tmp_path, "r", "00000000000000aa")[0]["version"] == 3  # type: ignore[index]
    assert load_checkpoint(tmp_path, "r", "00000000000000cc") is None
    assert incarnations_on_disk(tmp_path, "r") == ["", "00000000000000aa", "00000000000000bb"]
    remove_checkpoint(tmp_path, "r")  # the legacy incarnation only
    assert incarnations_on_disk(tmp_path, "r") == ["00000000000000aa", "00000000000000bb"]
    remove_checkpoint(tmp_path, "r", "00000000000000aa")
    assert incarnations_on_disk(tmp_path, "r") == ["00000000000000bb"]
    remove_checkpoint(tmp_path, "r", "00000000000000bb")
    assert not run_folder(tmp_path, "r").exists()


def test_a_corrupt_checkpoint_names_its_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, "r", state(2), "2-0", "00000000000000aa")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointLoadError) as failure:
        load_checkpoint(tmp_path, "r", "00000000000000aa")
    assert failure.value.path == path and str(path) in str(failure.value)
