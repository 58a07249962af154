"""The GRPO step's plumbing: masks, skipping zero-advantage groups, micro-batch weighting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from sweetspot_trainer.policy import UpdateOptions, build_batch, grpo_update, sequence_logprobs
from sweetspot_trainer.rollout import Rollout


def _rollouts(seed: int, count: int = 6) -> list[Rollout]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        p = int(torch.randint(3, 7, (1,), generator=g))
        c = int(torch.randint(1, 6, (1,), generator=g))
        ids = torch.randint(3, 500, (p + c,), generator=g).tolist()
        out.append(Rollout(prompt_ids=ids[:p], completion_ids=ids[p:], text="", finished=True))
    return out


def test_loss_mask_marks_exactly_the_completion_labels() -> None:
    r = Rollout(prompt_ids=[5, 6, 7], completion_ids=[8, 9], text="", finished=True)
    short = Rollout(prompt_ids=[5], completion_ids=[4], text="", finished=True)
    batch = build_batch([r, short], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [5, 4, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    # labels are input_ids[:, 1:] = [6, 7, 8, 9] and [4, 0, 0, 0]
    assert batch.loss_mask.tolist() == [[0, 0, 1, 1], [1, 0, 0, 0]]


def _reference_grads(
    model: torch.nn.Module, rollouts: list[Rollout], advantages: torch.Tensor, aggregation: str
) -> list[torch.Tensor]:
    """One pass over every sequence, REINFORCE form of the on-policy loss, no tricks."""
    model.zero_grad()
    batch = build_batch(rollouts, pad_id=0)
    logp = sequence_logprobs(model, batch)  # [N, T-1]
    per_token = -advantages[:, None] * logp * batch.loss_mask
    if aggregation == "seq_mean":
        loss = (per_token.sum(1) / batch.loss_mask.sum(1)).mean()
    else:
        loss = per_token.sum() / batch.loss_mask.sum()
    loss.backward()
    return [p.grad.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("aggregation", ["seq_mean", "token_mean"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skipping_and_micro_batching_keep_the_gradient(
    tiny_llama: Path, aggregation: str, seed: int
) -> None:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    rollouts = _rollouts(seed)
    advantages = torch.tensor([0.5, -0.5, 0.0, 0.0, 0.25, -0.25])
    expected = _reference_grads(model, rollouts, advantages, aggregation)
    before = [p.detach().clone() for p in model.parameters()]
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    options = UpdateOptions(aggregation=aggregation, micro_batch_size=2, grad_clip=1e9)
    stats = grpo_update(model, sgd, rollouts, advantages, options, pad_id=0)
    assert stats["trained_sequences"] == 4
    for b, after, grad in zip(before, model.parameters(), expected, strict=True):
        torch.testing.assert_close(b - after.detach(), grad, atol=1e-6, rtol=1e-4)


def test_all_zero_advantages_leave_the_policy_unchanged(tiny_llama: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    stats = grpo_update(model, opt, _rollouts(3), torch.zeros(6), UpdateOptions(), pad_id=0)
    assert stats["trained_sequences"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_kl_and_inner_epochs_run_and_move_the_policy(tiny_llama: Path) -> None:
    import copy

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    reference = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    options = UpdateOptions(inner_epochs=3, kl_coef=0.1, clip_eps=0.2)
    advantages = torch.tensor([1.0, -1.0, 0.0, 0.0, 0.5, -0.5])
    stats = grpo_update(
        model, opt, _rollouts(4), advantages, options, pad_id=0, reference=reference
    )
    assert stats["trained_sequences"] == 6  # with a KL term no sequence is skipped
    assert stats["kl"] >= 0.0
    moved = any(
        not torch.equal(a, b)
        for a, b in zip(reference.parameters(), model.parameters(), strict=True)
    )
    assert moved


def _update_direction(model: torch.nn.Module, options: UpdateOptions) -> torch.Tensor:
    """The step one SGD update (lr 1) takes, flattened: the clipped GRPO gradient."""
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 0.25, -0.25])
    grpo_update(model, sgd, _rollouts(5), advantages, options, pad_id=0)
    return before - torch.cat([p.detach().flatten() for p in model.parameters()])


def test_bf16_autocast_follows_the_float32_gradient_and_keeps_float32_weights(
    tiny_llama: Path,
) -> None:
    import copy

    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    mixed = copy.deepcopy(base)
    exact = _update_direction(base, UpdateOptions(grad_clip=1e9))
    approx = _update_direction(mixed, UpdateOptions(grad_clip=1e9, autocast_dtype=torch.bfloat16))
    assert all(p.dtype == torch.float32 for p in mixed.parameters())
    assert not torch.equal(exact, approx)  # autocast really changed the arithmetic
    cosine = torch.nn.functional.cosine_similarity(exact.double(), approx.double(), dim=0)
    assert cosine > 0.98
    assert approx.norm() == pytest.approx(float(exact.norm()), rel=0.1)


def test_mixed_precision_setting_resolves_per_device() -> None:
    from sweetspot_service.backbone import resolve_dtype
    from sweetspot_trainer.train import autocast_dtype

    assert autocast_dtype("no", "cpu") is None
    assert autocast_dtype("bf16", "cpu") == torch.bfloat16
    native = resolve_dtype("auto", "cpu") == torch.bfloat16
    assert autocast_dtype("auto", "cpu") == (torch.bfloat16 if native else None)
