"""Sleep/wake ordering of the vLLM engine (GPU only, so vLLM's LLM is a recording fake here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from sweetspot_trainer.rollout.vllm_engine import VLLMEngine, sleep_mode


class RecordingLLM:
    """Stands in for ``vllm.LLM`` where only a GPU can run it: records the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def sleep(self, level: int = 1) -> None:
        self.calls.append(("sleep", level))

    def wake_up(self, tags: list[str] | None = None) -> bool:
        self.calls.append(("wake_up", tags))
        return True

    def collective_rpc(self, method: str, kwargs: dict[str, Any]) -> list[None]:
        self.calls.append(("collective_rpc", method))
        return [None]

    def reset_prefix_cache(self) -> bool:
        self.calls.append(("reset_prefix_cache", None))
        return True


def engine(tmp_path: Path, *, sleep: bool) -> tuple[VLLMEngine, RecordingLLM]:
    eng = VLLMEngine.__new__(VLLMEngine)  # skip __init__: it would start a real vLLM engine
    llm = RecordingLLM()
    eng.llm = llm
    eng.workdir = tmp_path
    eng.dtype = torch.float32
    eng.sleep_between_steps = sleep
    return eng, llm


def test_sleep_frees_everything_then_wakes_weights_before_kv_cache(tmp_path: Path) -> None:
    eng, llm = engine(tmp_path, sleep=True)
    eng.before_update()
    eng.sync_weights(nn.Linear(2, 2))
    assert llm.calls == [
        ("sleep", 2),  # weights are reloaded from the file: no CPU copy needed
        ("wake_up", ["weights"]),
        ("collective_rpc", "reload_weights"),
        ("wake_up", ["kv_cache"]),
        ("reset_prefix_cache", None),
    ]
    assert (tmp_path / "model.safetensors").exists()


def test_without_sleep_mode_sync_only_reloads(tmp_path: Path) -> None:
    eng, llm = engine(tmp_path, sleep=False)
    eng.before_update()
    eng.sync_weights(nn.Linear(2, 2))
    assert llm.calls == [("collective_rpc", "reload_weights"), ("reset_prefix_cache", None)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_sleep_mode_is_declined_with_a_warning_on_cpu(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        assert sleep_mode(True) is False
    assert "needs a CUDA GPU" in caplog.text
    assert sleep_mode(False) is False
