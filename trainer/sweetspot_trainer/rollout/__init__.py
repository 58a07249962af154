"""Rollout engines: sample n completions per prompt from the current policy."""

from sweetspot_trainer.rollout.base import Rollout, RolloutEngine, chat_prompt
from sweetspot_trainer.rollout.hf import TransformersEngine
from sweetspot_trainer.rollout.vllm_engine import VLLMEngine, vllm_available

__all__ = [
    "Rollout",
    "RolloutEngine",
    "TransformersEngine",
    "VLLMEngine",
    "chat_prompt",
    "vllm_available",
]
