"""The policy's pooled prefill hidden states (``integrations.policy_features``) and the settings
that ask for them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sweetspot_client.integrations import SweetspotConfig
from sweetspot_client.integrations.policy_features import (
    default_layer,
    hidden_width,
    prefill_features,
)
from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.prefill import PolicyPrefill
from sweetspot_trainer.tasks import Problem

PROMPTS = ["What is 2 + 3?", "Add 17, 4 and 9, then subtract 11.", "7 - 7 ="]


@pytest.fixture(scope="module")
def policy(tiny_llama: Path) -> tuple[torch.nn.Module, object]:
    return AutoModelForCausalLM.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(
        tiny_llama
    )


def test_each_vector_is_the_mean_of_its_own_unpadded_prefill(policy: tuple) -> None:
    model, tokenizer = policy
    ids = tokenizer(PROMPTS)["input_ids"]
    assert len({len(i) for i in ids}) == 3  # batched rows are padded
    model.train()
    vectors = prefill_features(model, ids, pad_id=2, layer=1, batch_size=2)
    assert vectors.shape == (3, hidden_width(model)) and vectors.dtype == torch.float32
    assert model.training and not vectors.requires_grad  # mode restored, no graph kept
    model.eval()
    with torch.no_grad():
        for row, prompt_ids in zip(vectors, ids, strict=True):
            states = model(torch.tensor([prompt_ids]), output_hidden_states=True).hidden_states
            torch.testing.assert_close(row, states[1][0].mean(dim=0), atol=1e-5, rtol=1e-4)
    last = prefill_features(model, ids, pad_id=2, layer=2)
    assert not torch.allclose(last, vectors)  # the layer is the one asked for


def test_prompts_are_cut_to_their_last_tokens_and_bad_arguments_are_named(policy: tuple) -> None:
    model, tokenizer = policy
    ids = tokenizer(PROMPTS[1:2])["input_ids"]
    cut = prefill_features(model, ids, pad_id=2, max_tokens=3)
    torch.testing.assert_close(cut, prefill_features(model, [ids[0][-3:]], pad_id=2))
    with pytest.raises(ValueError, match="between 0 and the model's 2 blocks"):
        prefill_features(model, ids, pad_id=2, layer=3)
    with pytest.raises(ValueError, match="at least one token"):
        prefill_features(model, [[]], pad_id=2)
    assert prefill_features(model, [], pad_id=2).shape == (0, 32)


def test_default_layer_is_two_thirds_of_the_blocks(policy: tuple) -> None:
    model, _ = policy
    assert default_layer(model) == 1  # round(2 * 2 / 3)
    model.config.num_hidden_layers = 30  # SmolLM2-135M's depth, read from the config
    try:
        assert default_layer(model) == 20
    finally:
        model.config.num_hidden_layers = 2


def test_the_trainer_prefills_the_chat_prompt_and_times_it(policy: tuple) -> None:
    model, tokenizer = policy
    prefill = PolicyPrefill(model, tokenizer)
    problems = [Problem(f"p{i}", text, "", "") for i, text in enumerate(PROMPTS)]
    vectors = prefill(problems)
    chat = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in PROMPTS
    ]
    ids = tokenizer(chat, add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(vectors, prefill_features(model, ids, pad_id=2))
    assert prefill.width == 32 and prefill.take_seconds() > 0 and prefill.take_seconds() == 0


def test_features_other_than_text_need_a_run_of_their_own_and_a_width() -> None:
    with pytest.raises(ValueError, match="'default' run reads prompt text"):
        SweetspotConfig(features="policy")
    with pytest.raises(ValueError, match="feature_width=W"):
        SweetspotConfig(run="job", features=lambda records: [[0.0]] * len(records))
    with pytest.raises(ValueError, match="'text', 'policy' or a function"):
        SweetspotConfig(run="job", features="hidden")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--service-run NAME"):
        TrainConfig(value_features="policy")
    with pytest.raises(ValueError, match="--selection pcl or random"):
        TrainConfig(value_features="policy", service_run="job", selection="uniform")
    assert TrainConfig(value_features="policy", service_run="job").value_features == "policy"
