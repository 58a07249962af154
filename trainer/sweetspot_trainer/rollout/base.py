"""The rollout interface every engine implements, and the one prompt formatter they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import nn
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Rollout:
    """One sampled completion. ``completion_ids`` ends with EOS when ``finished``."""

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    finished: bool


class RolloutEngine(Protocol):
    """Samples from the policy; ``sync_weights`` makes the next ``generate`` see an update."""

    name: str

    def generate(
        self, prompts: list[str], *, n: int, max_new_tokens: int, temperature: float
    ) -> list[list[Rollout]]:
        """``prompts`` are raw user texts: [B] -> [B][n] rollouts."""
        ...

    def before_update(self) -> None:
        """Called between rollout and policy update (vLLM frees GPU memory here)."""
        ...

    def sync_weights(self, policy: nn.Module) -> None: ...

    def close(self) -> None: ...


def chat_prompt(tokenizer: PreTrainedTokenizerBase, text: str) -> str:
    """The user turn wrapped in the model's chat template, ready for the assistant's answer.

    Every engine formats prompts through this function, so they sample from the same
    distribution the policy update scores.
    """
    if tokenizer.chat_template is None:
        return text
    formatted = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    assert isinstance(formatted, str)
    return formatted
