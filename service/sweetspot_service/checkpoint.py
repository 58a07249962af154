"""Atomic checkpoints of one run's value model: write a temp file, fsync, rename, fsync dir.

A checkpoint holds the model's ``state()`` (weights, optimiser, version, and under
``calibration`` the run's calibration window) and the id of the last update-log entry it
includes; on restart the service loads it and replays the log after
that id. A crash at any point leaves either the old or the new file, never a torn one.

Layout: ``<dir>/runs/<run>/v<version, 12 digits>.pt``. One folder per run, because run names
cannot contain ``/``: no run name can address another run's files, whatever it looks like.
Files are named by version so that replicas sharing one checkpoint directory never replace
a newer checkpoint with an older one: a lagging replica writes its own (older) file, the
newest file wins when anyone loads, and each write prunes the files older than itself.

Earlier releases wrote flat files, ``<dir>/<run>.v<version>.pt`` and before that
``<dir>/<run>.pt``. They still load, but only for run names the flat scheme cannot confuse:
a name ending in ``.v`` + 12 digits (``default.v000000000126``) has the flat name
``default.v000000000126.pt``, which is run ``default``'s checkpoint, so such a run never
reads, prunes or removes flat files. The first new checkpoint of a run prunes its flat ones.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = 1
RUNS_FOLDER = "runs"
_VERSIONED = re.compile(r"^v(\d{12})\.pt$")
_AMBIGUOUS_FLAT = re.compile(r"\.v\d{12}$")

logger = logging.getLogger(__name__)


def run_folder(directory: Path, run: str) -> Path:
    return directory / RUNS_FOLDER / run


def _versioned(directory: Path, run: str) -> list[tuple[int, Path]]:
    """(version, path) of the run's checkpoints, new layout and flat, newest first."""
    found = []
    folder = run_folder(directory, run)
    if folder.is_dir():
        for path in folder.iterdir():
            if match := _VERSIONED.match(path.name):
                found.append((int(match.group(1)), path))
    if _owns_flat_files(run) and directory.is_dir():
        flat = re.compile(rf"^{re.escape(run)}\.v(\d{{12}})\.pt$")
        for path in directory.iterdir():
            if (match := flat.match(path.name)) and path.is_file():
                found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def _owns_flat_files(run: str) -> bool:
    """Whether flat files named after ``run`` can only be this run's (see the docstring)."""
    return _AMBIGUOUS_FLAT.search(run) is None


def _legacy(directory: Path, run: str) -> Path | None:
    if not _owns_flat_files(run):
        return None
    path = directory / f"{run}.pt"
    return path if path.is_file() else None


def newest_version(directory: Path, run: str) -> int | None:
    """Version of the run's newest versioned checkpoint (from its name alone), or None."""
    found = _versioned(directory, run)
    return found[0][0] if found else None


def save_checkpoint(
    directory: Path, run: str, model_state: dict[str, Any], applied_id: str
) -> Path:
    """Write the run's checkpoint at ``model_state['version']``; prune older files."""
    folder = run_folder(directory, run)
    folder.mkdir(parents=True, exist_ok=True)
    version = int(model_state["version"])
    path = folder / f"v{version:012d}.pt"
    payload = {"format": FORMAT, "applied_id": applied_id, "model": model_state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for older, old_path in _versioned(directory, run):
        if older < version or old_path.parent != folder:
            old_path.unlink(missing_ok=True)
    if (legacy := _legacy(directory, run)) is not None:
        legacy.unlink(missing_ok=True)
    return path


def load_checkpoint(directory: Path, run: str) -> tuple[dict[str, Any], str] | None:
    """(model state, last applied log id) of the run's newest checkpoint, or None."""
    for _ in range(5):  # another replica may prune a file between listing and opening it
        found = _versioned(directory, run)
        path = found[0][1] if found else _legacy(directory, run)
        if path is None:
            _warn_if_flat_file_ignored(directory, run)
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            continue
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown checkpoint format {payload.get('format')!r}")
        return payload["model"], str(payload["applied_id"])
    raise RuntimeError(f"checkpoints of run {run!r} in {directory} kept vanishing while loading")


def _warn_if_flat_file_ignored(directory: Path, run: str) -> None:
    if not _owns_flat_files(run) and (directory / f"{run}.pt").is_file():
        owner = _AMBIGUOUS_FLAT.sub("", run)
        logger.warning(
            "run %s: not loading %s: that name is also run %r's checkpoint, so the run "
            "starts without one; if it really is this run's, move it to %s",
            run,
            directory / f"{run}.pt",
            owner,
            run_folder(directory, run) / "v<its version, 12 digits>.pt",
        )


def remove_checkpoint(directory: Path, run: str) -> None:
    """Remove every checkpoint of the run (its folder, and its flat files if it owns any)."""
    for _, path in _versioned(directory, run):
        path.unlink(missing_ok=True)
    if (legacy := _legacy(directory, run)) is not None:
        legacy.unlink(missing_ok=True)
    shutil.rmtree(run_folder(directory, run), ignore_errors=True)
