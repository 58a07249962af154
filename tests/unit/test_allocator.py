"""keep_freed_memory: large freed blocks are reused instead of unmapped and faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sweetspot_service.cli import CliSettings

# 40 MB is above glibc's largest adaptive mmap threshold (32 MiB), so with glibc's defaults
# every malloc of it is a fresh mmap that faults its pages in again.
PROBE = """
import ctypes, resource, sys
from sweetspot_service.allocator import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 40 << 20
def cycle():
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc rusage")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    took, kept = faults("keep")
    _, default = faults("default")
    assert took == "True"
    assert default > 10 * 10_000 // 2  # ten 40 MB buffers: about 100,000 4-KiB faults
    assert kept < default / 20


def test_the_service_flag_defaults_on_and_can_be_turned_off() -> None:
    assert CliSettings().keep_freed_memory is True
    from pydantic_settings import CliApp

    off = CliApp.run(CliSettings, cli_args=["--no-keep-freed-memory"])
    assert off.keep_freed_memory is False


def test_the_trainer_keeps_freed_memory_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sweetspot_trainer.train as train_module
    from sweetspot_trainer.config import TrainConfig

    calls: list[int] = []
    monkeypatch.setattr(train_module, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(train_module, "train", lambda cfg, client: [])
    train_module.run(TrainConfig(selection="uniform"))
    assert calls == [1]
    train_module.run(TrainConfig(selection="uniform", keep_freed_memory=False))
    assert calls == [1]
