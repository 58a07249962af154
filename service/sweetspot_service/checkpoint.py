"""Atomic checkpoints of one run's value model: write a temp file, fsync, rename, fsync dir.

A checkpoint holds the model's ``state()`` (weights, optimiser, version) and the id of the
last update-log entry it includes; on restart the service loads it and replays the log after
that id. A crash at any point leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = 1


def checkpoint_path(directory: Path, run: str) -> Path:
    return directory / f"{run}.pt"


def save_checkpoint(path: Path, model_state: dict[str, Any], applied_id: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "applied_id": applied_id, "model": model_state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], str] | None:
    """(model state, last applied log id), or None when there is no checkpoint yet."""
    if not path.exists():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {payload.get('format')!r}")
    return payload["model"], str(payload["applied_id"])


def remove_checkpoint(directory: Path, run: str) -> None:
    checkpoint_path(directory, run).unlink(missing_ok=True)
