"""Keep freed activation buffers for reuse instead of handing them back to the OS.

glibc serves every allocation above its mmap threshold (128 KiB to start, adapting up to
32 MiB) with a fresh ``mmap`` and unmaps it on free, and trims the heap top above 128 KiB.
A forward pass allocates and frees its activations (MiniLM at 64 prompts: about 40 MB per
batch), so each batch page-faults and zeroes them anew. ``bench/speed/allocator.py`` measures it
through the service (bench/results/allocator_*.json): about 15,300 minor faults per 64-prompt
MiniLM request with glibc's defaults and 0.5 with the thresholds raised, 1.27x the prompts/s
(SmolLM2, whose forward is ten times longer: 1.04x). The cost is that the process keeps its
peak working set mapped.

Only glibc has ``mallopt``; elsewhere (musl, macOS) ``keep_freed_memory`` does nothing and
says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold_mb: int = 1024, trim_threshold_mb: int = 1024) -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if glibc took them."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        logger.info("no glibc mallopt here: allocator left as it is")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20)
    )
    if ok:
        logger.info(
            "glibc allocator keeps freed memory: mmap threshold %d MiB, trim threshold %d MiB",
            mmap_threshold_mb,
            trim_threshold_mb,
        )
    else:
        logger.warning("glibc refused the mallopt thresholds: allocator left as it is")
    return ok
