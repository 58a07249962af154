"""Atomic checkpoints of one run's value model: write a temp file, fsync, rename, fsync dir.

A checkpoint holds the model's ``state()`` (weights, optimiser, version, and under
``calibration`` the run's calibration window) and the id of the last update-log entry it
includes; on restart the service loads it and replays the log after
that id. A crash at any point leaves either the old or the new file, never a torn one.

Layout: ``<dir>/runs/<run>/<incarnation>/v<version, 12 digits>.pt``. One folder per run
incarnation (``store.RunRef``), because run names cannot contain ``/``: no run name can
address another run's files, whatever it looks like, and a run deleted and created again
never finds its predecessor's checkpoint, even one a slower replica wrote after the delete.
The ``LEGACY`` incarnation (``default``, and runs created before incarnations) keeps the
earlier layout ``<dir>/runs/<run>/v<version>.pt``, so existing checkpoints load as before.
Files are named by version so that replicas sharing one checkpoint directory never replace
a newer checkpoint with an older one: a lagging replica writes its own (older) file, the
newest file wins when anyone loads, and each write prunes the files older than itself.

Earlier releases wrote flat files, ``<dir>/<run>.v<version>.pt`` and before that
``<dir>/<run>.pt``. They still load, but only for run names the flat scheme cannot confuse:
a name ending in ``.v`` + 12 digits (``default.v000000000126``) has the flat name
``default.v000000000126.pt``, which is run ``default``'s checkpoint, so such a run never
reads, prunes or removes flat files. The first new checkpoint of a run prunes its flat ones.

A checkpoint that cannot be read raises ``CheckpointLoadError`` naming the file, so the
service fails that run alone and says which file (``Runtime.open_run``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

LEGACY = ""  # store.LEGACY: the incarnation whose files keep the layout of earlier releases
FORMAT = 1
RUNS_FOLDER = "runs"
_VERSIONED = re.compile(r"^v(\d{12})\.pt$")
_AMBIGUOUS_FLAT = re.compile(r"\.v\d{12}$")

logger = logging.getLogger(__name__)


class CheckpointLoadError(Exception):
    """A checkpoint file exists but cannot be loaded (truncated, corrupt, unknown format)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"checkpoint {path} cannot be loaded: {reason}")
        self.path = path


def run_folder(directory: Path, run: str, incarnation: str = LEGACY) -> Path:
    folder = directory / RUNS_FOLDER / run
    return folder if incarnation == LEGACY else folder / incarnation


def _versioned(directory: Path, run: str, incarnation: str = LEGACY) -> list[tuple[int, Path]]:
    """(version, path) of the incarnation's checkpoints (legacy: also flat), newest first."""
    found = []
    folder = run_folder(directory, run, incarnation)
    if folder.is_dir():
        for path in folder.iterdir():
            if (match := _VERSIONED.match(path.name)) and path.is_file():
                found.append((int(match.group(1)), path))
    if incarnation == LEGACY and _owns_flat_files(run) and directory.is_dir():
        flat = re.compile(rf"^{re.escape(run)}\.v(\d{{12}})\.pt$")
        for path in directory.iterdir():
            if (match := flat.match(path.name)) and path.is_file():
                found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def _owns_flat_files(run: str) -> bool:
    """Whether flat files named after ``run`` can only be this run's (see the docstring)."""
    return _AMBIGUOUS_FLAT.search(run) is None


def _legacy(directory: Path, run: str, incarnation: str = LEGACY) -> Path | None:
    if incarnation != LEGACY or not _owns_flat_files(run):
        return None
    path = directory / f"{run}.pt"
    return path if path.is_file() else None


def newest_version(directory: Path, run: str, incarnation: str = LEGACY) -> int | None:
    """Version of the run's newest versioned checkpoint (from its name alone), or None."""
    found = _versioned(directory, run, incarnation)
    return found[0][0] if found else None


def incarnations_on_disk(directory: Path, run: str) -> list[str]:
    """The incarnations of ``run`` that have a checkpoint, newest version first."""
    found: list[tuple[int, str]] = []
    folder = run_folder(directory, run)
    if folder.is_dir():
        for sub in folder.iterdir():
            if sub.is_dir() and (version := newest_version(directory, run, sub.name)) is not None:
                found.append((version, sub.name))
    if (version := newest_version(directory, run)) is not None:
        found.append((version, LEGACY))
    elif _legacy(directory, run) is not None:
        found.append((-1, LEGACY))
    return [incarnation for _, incarnation in sorted(found, reverse=True)]


def save_checkpoint(
    directory: Path,
    run: str,
    model_state: dict[str, Any],
    applied_id: str,
    incarnation: str = LEGACY,
) -> Path:
    """Write the run's checkpoint at ``model_state['version']``; prune older files."""
    folder = run_folder(directory, run, incarnation)
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
    for older, old_path in _versioned(directory, run, incarnation):
        if older < version or old_path.parent != folder:
            old_path.unlink(missing_ok=True)
    if (legacy := _legacy(directory, run, incarnation)) is not None:
        legacy.unlink(missing_ok=True)
    return path


def load_checkpoint(
    directory: Path, run: str, incarnation: str = LEGACY
) -> tuple[dict[str, Any], str] | None:
    """(model state, last applied log id) of the run's newest checkpoint, or None.

    ``CheckpointLoadError`` (naming the file) when the newest one cannot be read.
    """
    for _ in range(5):  # another replica may prune a file between listing and opening it
        found = _versioned(directory, run, incarnation)
        path = found[0][1] if found else _legacy(directory, run, incarnation)
        if path is None:
            if incarnation == LEGACY:
                _warn_if_flat_file_ignored(directory, run)
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            continue
        except Exception as exc:  # truncated or corrupt: torch raises several kinds
            raise CheckpointLoadError(path, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            format_ = payload.get("format") if isinstance(payload, dict) else None
            raise CheckpointLoadError(path, f"unknown checkpoint format {format_!r}")
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


def remove_checkpoint(directory: Path, run: str, incarnation: str = LEGACY) -> None:
    """Remove every checkpoint of one incarnation of the run (its folder; legacy: its files
    and flat files, never another incarnation's folder). ``OSError`` when something could
    not be removed (a read-only folder): call it again later."""
    folder = run_folder(directory, run, incarnation)
    if incarnation != LEGACY:
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            if folder.exists():  # another replica is removing it too: not done yet
                raise
    else:
        for _, path in _versioned(directory, run):
            path.unlink(missing_ok=True)
        if (legacy := _legacy(directory, run)) is not None:
            legacy.unlink(missing_ok=True)
        for path in folder.glob(".v*.tmp") if folder.is_dir() else []:
            path.unlink(missing_ok=True)  # a write interrupted by a crash
    with contextlib.suppress(OSError):  # still holds another incarnation, or gone already
        run_folder(directory, run).rmdir()
