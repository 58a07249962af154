"""Rollouts with transformers ``generate`` on the policy itself (CPU or GPU)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sweetspot_trainer.rollout.base import Rollout, chat_prompt


class TransformersEngine:
    """Samples from the live policy module, so weight sync is a no-op.

    Prompts are generated in chunks of ``max_batch_prompts`` (× n sequences each) to bound
    memory; the tokenizer pads on the left for generation.
    """

    name = "transformers"

    def __init__(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_batch_prompts: int = 8,
    ) -> None:
        self.policy = policy
        self.tokenizer = tokenizer
        self.max_batch_prompts = max_batch_prompts

    def generate(
        self, prompts: list[str], *, n: int, max_new_tokens: int, temperature: float
    ) -> list[list[Rollout]]:
        out: list[list[Rollout]] = []
        for start in range(0, len(prompts), self.max_batch_prompts):
            out.extend(
                self._generate_chunk(
                    prompts[start : start + self.max_batch_prompts], n, max_new_tokens, temperature
                )
            )
        return out

    def _generate_chunk(
        self, prompts: list[str], n: int, max_new_tokens: int, temperature: float
    ) -> list[list[Rollout]]:
        tok = self.tokenizer
        tok.padding_side = "left"
        texts = [chat_prompt(tok, p) for p in prompts]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.policy.device)
        was_training = self.policy.training
        self.policy.eval()
        with torch.inference_mode():
            sequences = self.policy.generate(
                **enc,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=1.0,
                top_k=0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )  # [B * n, P + C], prompts repeated n times in order
        self.policy.train(was_training)
        width = enc["input_ids"].shape[1]
        groups: list[list[Rollout]] = []
        for b, _ in enumerate(prompts):
            mask = enc["attention_mask"][b].bool()
            prompt_ids = enc["input_ids"][b][mask].tolist()
            group = []
            for row in sequences[b * n : (b + 1) * n]:
                completion, finished = _cut_at_eos(row[width:].tolist(), tok.eos_token_id)
                group.append(
                    Rollout(
                        prompt_ids=prompt_ids,
                        completion_ids=completion,
                        text=tok.decode(completion, skip_special_tokens=True),
                        finished=finished,
                    )
                )
            groups.append(group)
        return groups

    def before_update(self) -> None:
        pass

    def sync_weights(self, policy: nn.Module) -> None:
        if policy is not self.policy:
            raise ValueError("TransformersEngine samples from the policy it was built with")

    def close(self) -> None:
        pass


def _cut_at_eos(ids: list[int], eos: int | None) -> tuple[list[int], bool]:
    """Keep tokens up to and including the first EOS; padding after it is dropped."""
    if eos is not None and eos in ids:
        return ids[: ids.index(eos) + 1], True
    return ids, False
