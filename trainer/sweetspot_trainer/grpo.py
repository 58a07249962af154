"""GRPO maths as small pure tensor functions: advantages, log-probs, the policy loss.

Shapes: m prompts, n samples per prompt, N = m·n sequences, T-1 label positions.

The defaults follow the PCL paper's variant: advantage r − mean(r) over the group (no std
normalisation), each sequence's token losses averaged (``seq_mean``), no KL, on-policy (one
gradient step per batch, so the ratio is 1 and clipping never binds). The options add std
normalisation, DAPO's token-level aggregation (``token_mean``), the PPO-clipped ratio for
several inner epochs, and a k3 KL penalty to a reference policy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, *, normalize_std: bool = False, eps: float = 1e-6) -> Tensor:
    """[m, n] rewards -> [m, n] advantages r − mean(r), optionally divided by the group std.

    Groups whose rewards are all equal get zero advantages either way.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [m, n]; got shape {tuple(rewards.shape)}")
    rewards = rewards.float()
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        std = rewards.std(dim=1, keepdim=True, unbiased=True) if rewards.shape[1] > 1 else None
        if std is not None:
            centred = centred / (std + eps)
    return centred


def effective_mask(rewards: Tensor) -> Tensor:
    """[m, n] rewards -> [m] bool: the groups whose rewards differ (a non-zero gradient)."""
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) > 0


def token_logprobs(logits: Tensor, labels: Tensor) -> Tensor:
    """Log-probability of each label: logits [N, L, V], labels [N, L] -> [N, L].

    ``logsumexp`` instead of a full ``log_softmax`` keeps the [N, L, V] intermediate to one.
    """
    picked = torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def _seq_mean(per_token: Tensor, mask: Tensor) -> Tensor:
    """Average each sequence's tokens (1/|y|), then average the sequences."""
    return ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()


def _token_mean(per_token: Tensor, mask: Tensor) -> Tensor:
    """Average over all completion tokens of the batch (DAPO): long answers weigh more."""
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


AGGREGATIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "seq_mean": _seq_mean,
    "token_mean": _token_mean,
}


def aggregate(per_token: Tensor, mask: Tensor, aggregation: str) -> Tensor:
    """[N, L] per-token losses and mask -> scalar, by the named rule."""
    try:
        rule = AGGREGATIONS[aggregation]
    except KeyError:
        raise ValueError(
            f"unknown aggregation {aggregation!r}; choose one of {sorted(AGGREGATIONS)}"
        ) from None
    return rule(per_token, mask)


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    aggregation: str = "seq_mean",
    clip_eps: float | None = 0.2,
    ref_logprobs: Tensor | None = None,
    kl_coef: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """The GRPO loss and diagnostics.

    logprobs, old_logprobs, mask, ref_logprobs: [N, L]; advantages: [N].
    Per token: −min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) with ρ = exp(logp − old_logp), plus
    ``kl_coef`` × k3(π‖π_ref) = exp(ref − logp) − (ref − logp) − 1 when a reference is given.
    With ``old_logprobs = logprobs.detach()`` the gradient is the on-policy REINFORCE one.
    """
    mask = mask.float()
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages[:, None].float()
    unclipped = ratio * adv
    if clip_eps is None:
        per_token = -unclipped
        clipped_frac = torch.zeros((), device=logprobs.device)
    else:
        clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
        per_token = -torch.minimum(unclipped, clipped)
        clipped_frac = ((clipped < unclipped).float() * mask).sum() / mask.sum().clamp(min=1.0)
    info: dict[str, float] = {"clip_fraction": float(clipped_frac)}
    if ref_logprobs is not None and kl_coef > 0:
        delta = ref_logprobs - logprobs
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + kl_coef * kl
        info["kl"] = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1.0))
    return aggregate(per_token, mask, aggregation), info
