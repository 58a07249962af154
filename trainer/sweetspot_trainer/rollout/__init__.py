"""Rollout engines: sample n completions per prompt from the current policy."""

from sweetspot_trainer.rollout.base import Rollout, RolloutEngine, chat_prompt
from sweetspot_trainer.rollout.hf import TransformersEngine

__all__ = ["Rollout", "RolloutEngine", "TransformersEngine", "chat_prompt"]
