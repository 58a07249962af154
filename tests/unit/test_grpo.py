"""GRPO maths against hand-computed values, and loop vs vectorised forms over seeds."""

from __future__ import annotations

import math

import pytest
import torch

from sweetspot_trainer.grpo import (
    aggregate,
    effective_mask,
    group_advantages,
    policy_loss,
    token_logprobs,
)


def test_advantages_are_reward_minus_group_mean() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    adv = group_advantages(rewards)
    expected = [[0.5, -0.5, -0.5, 0.5], [0.0, 0.0, 0.0, 0.0], [-0.25, -0.25, -0.25, 0.75]]
    torch.testing.assert_close(adv, torch.tensor(expected))


def test_std_normalisation_divides_by_the_unbiased_group_std() -> None:
    rewards = torch.tensor([[0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    adv = group_advantages(rewards, normalize_std=True)
    std = math.sqrt((3 * 0.25**2 + 0.75**2) / 3)  # unbiased
    torch.testing.assert_close(adv[0], torch.tensor([-0.25, -0.25, -0.25, 0.75]) / (std + 1e-6))
    assert torch.equal(adv[1], torch.zeros(4))  # constant groups stay at zero, no NaN


def test_advantages_need_a_matrix() -> None:
    with pytest.raises(ValueError, match=r"\[m, n\]"):
        group_advantages(torch.zeros(4))


def test_effective_mask_marks_groups_with_reward_variance() -> None:
    rewards = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [0.2, 0.3]])
    assert effective_mask(rewards).tolist() == [False, True, False, True]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_token_logprobs_match_log_softmax(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 5, 11, generator=g)
    labels = torch.randint(0, 11, (3, 5), generator=g)
    expected = torch.log_softmax(logits, -1).gather(-1, labels[..., None]).squeeze(-1)
    torch.testing.assert_close(token_logprobs(logits, labels), expected)


def test_seq_mean_and_token_mean_by_hand() -> None:
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert float(aggregate(per_token, mask, "seq_mean")) == pytest.approx((2.0 + 4.0) / 2)
    assert float(aggregate(per_token, mask, "token_mean")) == pytest.approx(10.0 / 4)


def test_unknown_aggregation_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"\['seq_mean', 'token_mean'\]"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "sum")


def test_on_policy_loss_value_and_gradient() -> None:
    """ratio = 1: loss = −mean_i(A_i · mean_t 1) and d loss / d logp = −A_i / |y_i| / N."""
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.7]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([0.5, -1.0])
    loss, info = policy_loss(logp, logp.detach(), adv, mask)
    assert float(loss) == pytest.approx(-(0.5 + -1.0) / 2)
    loss.backward()
    expected = torch.tensor([[-0.5 / 2 / 2, -0.5 / 2 / 2], [1.0 / 1 / 2, 0.0]])
    torch.testing.assert_close(logp.grad, expected)
    assert info["clip_fraction"] == 0.0


def test_clipping_by_hand() -> None:
    """A = 1 with ratio 1.5 clips to 1.2; A = −1 with ratio 0.5 clips to 0.8."""
    old = torch.zeros(2, 1)
    logp = torch.log(torch.tensor([[1.5], [0.5]]))
    adv = torch.tensor([1.0, -1.0])
    loss, info = policy_loss(logp, old, adv, torch.ones(2, 1), clip_eps=0.2)
    assert float(loss) == pytest.approx((-1.2 + 0.8) / 2)
    assert info["clip_fraction"] == pytest.approx(1.0)
    loss_unclipped, _ = policy_loss(logp, old, adv, torch.ones(2, 1), clip_eps=None)
    assert float(loss_unclipped) == pytest.approx((-1.5 + 0.5) / 2)


def test_k3_kl_by_hand() -> None:
    logp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    loss, info = policy_loss(
        logp, logp, torch.zeros(1), torch.ones(1, 1), ref_logprobs=ref, kl_coef=0.1
    )
    delta = math.log(0.25) - math.log(0.5)
    k3 = math.exp(delta) - delta - 1
    assert info["kl"] == pytest.approx(k3)
    assert float(loss) == pytest.approx(0.1 * k3)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_vectorised_loss_matches_a_python_loop(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n, length = 5, 7
    logp = -torch.rand(n, length, generator=g) * 3
    old = logp + 0.3 * torch.randn(n, length, generator=g)
    adv = torch.randn(n, generator=g)
    mask = (torch.rand(n, length, generator=g) > 0.3).float()
    mask[:, 0] = 1.0
    for aggregation in ("seq_mean", "token_mean"):
        loss, _ = policy_loss(logp, old, adv, mask, aggregation=aggregation, clip_eps=0.2)
        seq_losses, token_sum, token_count = [], 0.0, 0.0
        for i in range(n):
            terms = []
            for t in range(length):
                if mask[i, t] == 0:
                    continue
                ratio = math.exp(float(logp[i, t] - old[i, t]))
                a = float(adv[i])
                terms.append(-min(ratio * a, min(max(ratio, 0.8), 1.2) * a))
            seq_losses.append(sum(terms) / len(terms))
            token_sum += sum(terms)
            token_count += len(terms)
        expected = sum(seq_losses) / n if aggregation == "seq_mean" else token_sum / token_count
        assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)
