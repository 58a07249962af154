"""Atomic checkpoints of one run's value model: write a temp file, fsync, rename, fsync dir.

A checkpoint holds the model's ``state()`` (weights, optimiser, version) and the id of the
last update-log entry it includes; on restart the service loads it and replays the log after
that id. A crash at any point leaves either the old or the new file, never a torn one.

Files are named by version, ``<run>.v<version, 12 digits>.pt``, so that replicas sharing one
checkpoint directory never replace a newer checkpoint with an older one: a lagging replica
writes its own (older) file, the newest file wins when anyone loads, and each write prunes
the files older than itself. A ``<run>.pt`` written by an earlier release is still loaded
when no versioned file exists.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = 1


def _versioned(directory: Path, run: str) -> list[tuple[int, Path]]:
    """(version, path) of the run's versioned checkpoints, newest first."""
    pattern = re.compile(rf"^{re.escape(run)}\.v(\d{{12}})\.pt$")
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            if match := pattern.match(path.name):
                found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def _legacy(directory: Path, run: str) -> Path:
    return directory / f"{run}.pt"


def newest_version(directory: Path, run: str) -> int | None:
    """Version of the run's newest versioned checkpoint (from its name alone), or None."""
    found = _versioned(directory, run)
    return found[0][0] if found else None


def save_checkpoint(
    directory: Path, run: str, model_state: dict[str, Any], applied_id: str
) -> Path:
    """Write the run's checkpoint at ``model_state['version']``; prune older files."""
    directory.mkdir(parents=True, exist_ok=True)
    version = int(model_state["version"])
    path = directory / f"{run}.v{version:012d}.pt"
    payload = {"format": FORMAT, "applied_id": applied_id, "model": model_state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for older, old_path in _versioned(directory, run):
        if older < version:
            old_path.unlink(missing_ok=True)
    _legacy(directory, run).unlink(missing_ok=True)
    return path


def load_checkpoint(directory: Path, run: str) -> tuple[dict[str, Any], str] | None:
    """(model state, last applied log id) of the run's newest checkpoint, or None."""
    for _ in range(5):  # another replica may prune a file between listing and opening it
        found = _versioned(directory, run)
        path = found[0][1] if found else _legacy(directory, run)
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            continue
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown checkpoint format {payload.get('format')!r}")
        return payload["model"], str(payload["applied_id"])
    raise RuntimeError(f"checkpoints of run {run!r} in {directory} kept vanishing while loading")


def remove_checkpoint(directory: Path, run: str) -> None:
    for _, path in _versioned(directory, run):
        path.unlink(missing_ok=True)
    _legacy(directory, run).unlink(missing_ok=True)
