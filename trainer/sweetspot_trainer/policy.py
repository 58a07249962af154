"""From rollouts and advantages to one policy update (the GRPO step's tensor plumbing).

Sequences whose advantage is zero contribute nothing to the loss when there is no KL
term, so they are skipped; the loss of each micro-batch is weighted by its share of the
full batch, which keeps the gradient identical to one pass over every sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sweetspot_trainer.grpo import policy_loss, token_logprobs
from sweetspot_trainer.rollout import Rollout


@dataclass(frozen=True)
class UpdateOptions:
    aggregation: str = "seq_mean"
    clip_eps: float | None = 0.2
    kl_coef: float = 0.0
    inner_epochs: int = 1
    micro_batch_size: int = 8
    grad_clip: float = 1.0
    # Forward and backward under torch.autocast to this dtype (bf16 mixed precision); the
    # weights and the optimiser stay float32. None: plain float32.
    autocast_dtype: torch.dtype | None = None


@dataclass
class SequenceBatch:
    """Prompt + completion token rows, right padded.

    input_ids, attention_mask: [N, T]; loss_mask: [N, T-1], 1 where the label
    ``input_ids[:, 1:]`` is a completion token.
    """

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor

    def to(self, device: torch.device) -> SequenceBatch:
        return SequenceBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.loss_mask.to(device)
        )

    def rows(self, index: Tensor) -> SequenceBatch:
        """The sub-batch of ``index`` rows, trimmed to its longest sequence."""
        width = int(self.attention_mask[index].sum(dim=1).max())
        return SequenceBatch(
            self.input_ids[index, :width],
            self.attention_mask[index, :width],
            self.loss_mask[index, : width - 1],
        )


def build_batch(rollouts: list[Rollout], pad_id: int) -> SequenceBatch:
    """[N] rollouts -> a right-padded ``SequenceBatch`` of prompt + completion tokens."""
    width = max(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts)
    n = len(rollouts)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    loss_mask = torch.zeros((n, width - 1), dtype=torch.float32)
    for i, r in enumerate(rollouts):
        p, c = len(r.prompt_ids), len(r.completion_ids)
        input_ids[i, : p + c] = torch.tensor(r.prompt_ids + r.completion_ids)
        attention[i, : p + c] = 1
        loss_mask[i, p - 1 : p + c - 1] = 1.0  # labels at positions p..p+c-1
    return SequenceBatch(input_ids, attention, loss_mask)


def sequence_logprobs(
    model: nn.Module, batch: SequenceBatch, autocast_dtype: torch.dtype | None = None
) -> Tensor:
    """Log-probability of each next token under ``model``: [N, T] -> [N, T-1] float32.

    With ``autocast_dtype`` the model runs under autocast; the log-softmax is float32.
    """
    device_type = batch.input_ids.device.type
    with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return token_logprobs(logits[:, :-1].float(), batch.input_ids[:, 1:])


def grpo_update(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    rollouts: list[Rollout],
    advantages: Tensor,
    options: UpdateOptions,
    *,
    pad_id: int,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """``inner_epochs`` optimiser steps of the GRPO loss on ``rollouts`` ([N], advantages [N]).

    Returns mean loss, clip fraction, KL, gradient norm and how many sequences trained.
    """
    device = next(policy.parameters()).device
    batch = build_batch(rollouts, pad_id)
    advantages = advantages.float()
    total_seqs = len(rollouts)
    total_tokens = float(batch.loss_mask.sum())
    active = torch.nonzero(advantages != 0).flatten() if options.kl_coef == 0 else None
    keep = active if active is not None else torch.arange(total_seqs)
    chunks = [c for c in torch.split(keep, options.micro_batch_size) if len(c)]
    amp = options.autocast_dtype
    old = _frozen_logprobs(policy, batch, chunks, amp, needed=options.inner_epochs > 1)
    ref = _frozen_logprobs(reference, batch, chunks, amp, needed=reference is not None)
    stats = {"loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "grad_norm": 0.0}
    policy.train()
    for _ in range(options.inner_epochs):
        optimizer.zero_grad(set_to_none=True)
        for j, index in enumerate(chunks):
            sub = batch.rows(index).to(device)
            logp = sequence_logprobs(policy, sub, amp)
            old_logp = old[j].to(device) if old else logp.detach()
            loss, info = policy_loss(
                logp,
                old_logp,
                advantages[index].to(device),
                sub.loss_mask,
                aggregation=options.aggregation,
                clip_eps=options.clip_eps,
                ref_logprobs=ref[j].to(device) if ref else None,
                kl_coef=options.kl_coef,
            )
            share = (
                len(index) / total_seqs
                if options.aggregation == "seq_mean"
                else float(sub.loss_mask.sum()) / total_tokens
            )
            (loss * share).backward()
            stats["loss"] += float(loss.detach()) * share / options.inner_epochs
            stats["clip_fraction"] += info.get("clip_fraction", 0.0) * share / options.inner_epochs
            stats["kl"] += info.get("kl", 0.0) * share / options.inner_epochs
        if chunks:
            norm = nn.utils.clip_grad_norm_(policy.parameters(), options.grad_clip)
            stats["grad_norm"] = float(norm)
            optimizer.step()
    stats["trained_sequences"] = float(len(keep))
    return stats


def _frozen_logprobs(
    model: nn.Module | None,
    batch: SequenceBatch,
    chunks: list[Tensor],
    autocast_dtype: torch.dtype | None,
    *,
    needed: bool,
) -> list[Tensor]:
    if model is None or not needed:
        return []
    device = next(model.parameters()).device
    with torch.no_grad():  # not inference_mode: these feed the autograd graph as constants
        return [
            sequence_logprobs(model, batch.rows(i).to(device), autocast_dtype).cpu() for i in chunks
        ]
