"""Feature runs' value model (``ValueModel.for_features``): the ridge head and posterior on
the vectors each call supplies, deterministic, checkpointed with its width."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sweetspot_service.backbone import Backbone
from sweetspot_service.value_model import ValueModel, forked_state

WIDTH = 6


def batch(seed: int, size: int = 16) -> tuple[list[str], torch.Tensor, list[float]]:
    """Prompts, [size, WIDTH] vectors and targets: solved exactly when x[0] > 0."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(size, WIDTH, generator=g)
    x[:, 0] = 2 * torch.rand(size, generator=g) - 1  # the signal, in [-1, 1]
    return [f"p{seed}-{i}" for i in range(size)], x, (x[:, 0] > 0).float().tolist()


def taught(updates: int = 12) -> ValueModel:
    model = ValueModel.for_features(WIDTH, replay_window=256, replay_half_life=64.0)
    for u in range(updates):
        prompts, x, y = batch(u)
        model.update(prompts, y, counts=[4] * len(prompts), features=x)
    return model


def test_a_fresh_feature_model_predicts_one_half_and_learns_from_the_vectors() -> None:
    model = ValueModel.for_features(WIDTH)
    assert model.feature_width == WIDTH and model.head_fit == "ridge"
    prompts, x, _ = batch(99)
    fresh, version = model.score(prompts, x)
    assert version == 0 and [s.p for s in fresh] == pytest.approx([0.5] * len(prompts))
    model = taught()
    scored, _ = model.score(prompts, x)
    solved = [s.prior for s, t in zip(scored, x[:, 0] > 0, strict=True) if t]
    unsolved = [s.prior for s, t in zip(scored, x[:, 0] > 0, strict=True) if not t]
    pairs = [(a, b) for a in solved for b in unsolved]
    assert sum(a > b for a, b in pairs) / len(pairs) > 0.9  # ranked by the vectors' signal


def test_the_same_updates_give_the_same_model_bit_for_bit() -> None:
    """Replicas and a replay apply the log's numbers: nothing depends on batching."""
    prompts, x, _ = batch(42)
    first, second = taught(), taught()
    assert first.score(prompts, x) == second.score(prompts, x.tolist())


def test_vectors_that_do_not_fit_are_refused() -> None:
    model = ValueModel.for_features(WIDTH)
    prompts, x, y = batch(1, size=3)
    with pytest.raises(ValueError, match="reads the feature vectors sent with the prompts"):
        model.score(prompts)
    with pytest.raises(ValueError, match=r"3 feature vectors of width 6, got shape \(3, 5\)"):
        model.score(prompts, x[:, :5])
    with pytest.raises(ValueError, match=r"got shape \(2, 6\)"):
        model.update(prompts, y, features=x[:2])
    assert model.version == 0


def test_a_text_model_refuses_vectors(tiny_bert: Path) -> None:
    model = ValueModel(Backbone.load(str(tiny_bert), dtype="float32"))
    assert model.feature_width is None and "feature_width" not in model.state()
    with pytest.raises(ValueError, match="featurises prompt text: send no features"):
        model.score(["a"], [[1.0] * model.backbone.hidden_size])


def test_the_checkpoint_keeps_the_width_and_restores_only_into_the_same_width(
    tiny_bert: Path,
) -> None:
    model = taught()
    prompts, x, _ = batch(7)
    state = model.state()
    assert state["feature_width"] == WIDTH
    restored = ValueModel.for_features(WIDTH, replay_window=256, replay_half_life=64.0)
    restored.load_state(state)
    assert restored.score(prompts, x) == model.score(prompts, x)
    with pytest.raises(
        ValueError, match="feature run of width 6, this run a feature run of width 7"
    ):
        ValueModel.for_features(7).load_state(state)
    text = ValueModel(Backbone.load(str(tiny_bert), dtype="float32"))
    with pytest.raises(ValueError, match="checkpoint is of a feature run of width 6, this run"):
        text.load_state(state)
    with pytest.raises(ValueError, match="checkpoint is of a text run"):
        model.load_state(text.state())


def test_a_fork_keeps_the_width_and_the_scores() -> None:
    model = taught()
    prompts, x, _ = batch(8)
    forked = ValueModel.for_features(WIDTH, replay_window=256, replay_half_life=64.0)
    forked.load_state(forked_state(model.state()))
    assert forked.version == 0 and forked.feature_width == WIDTH
    before = [s.p for s in model.score(prompts, x)[0]]
    assert [s.p for s in forked.score(prompts, x)[0]] == pytest.approx(before, abs=1e-9)
