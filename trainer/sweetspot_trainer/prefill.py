"""``--value-features policy``: the policy's pooled prefill hidden states of the candidates.

PCL's selection calls a ``PolicyPrefill`` with the step's ``k·m`` candidates; it formats each
prompt as every rollout engine does (``chat_prompt``), runs one no-grad forward pass of the
policy over them and returns the mean of ``hidden_states[layer]`` over each prompt's tokens
(``sweetspot_client.integrations.policy_features``, shared with the TRL integration). The
time it took is collected for the step's record (``take_seconds``).
"""

from __future__ import annotations

import time

from torch import Tensor
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from sweetspot_client.integrations.policy_features import (
    default_layer,
    hidden_width,
    prefill_features,
)
from sweetspot_trainer.rollout.base import chat_prompt
from sweetspot_trainer.tasks import Problem


class PolicyPrefill:
    """[B] problems -> [B, hidden] vectors from ``policy``'s prefill, timed."""

    def __init__(
        self,
        policy: PreTrainedModel,
        tokenizer: Tokenizer,
        *,
        layer: int | None = None,
        batch_size: int = 16,
        max_tokens: int = 1024,
    ) -> None:
        self.policy = policy
        self.tokenizer = tokenizer
        self.layer = default_layer(policy) if layer is None else layer
        self.width = hidden_width(policy)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._seconds = 0.0

    def __call__(self, problems: list[Problem]) -> Tensor:
        started = time.perf_counter()
        texts = [chat_prompt(self.tokenizer, p.prompt) for p in problems]
        token_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        vectors = prefill_features(
            self.policy,
            token_ids,
            pad_id=int(self.tokenizer.pad_token_id),
            layer=self.layer,
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
        )
        self._seconds += time.perf_counter() - started
        return vectors

    def take_seconds(self) -> float:
        """Seconds spent in prefills since the last call (a step's share of the cost)."""
        seconds, self._seconds = self._seconds, 0.0
        return seconds
