"""Which float the policy update may compute in, decided on the trainer's side.

The service's ``backbone.resolve_dtype("auto", device)`` makes the same test for the value
model; the few lines are repeated here so the trainer meets the service only through HTTP,
the launcher and ``models.resolve_model`` (ARCHITECTURE.md).
"""

from __future__ import annotations

import torch


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bfloat16 natively (a CUDA GPU that supports it, or a CPU
    with AVX512-BF16/AMX through oneDNN), so ``--mixed-precision auto`` may use it."""
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return device == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
