"""``examples/openrlhf_reward.py`` called as OpenRLHF 0.11 calls a ``--remote_rm_url`` file.

OpenRLHF itself does not install on CPU (it needs flash-attn and deepspeed), so the call is
reproduced: ``SingleTurnAgentExecutor._fetch_rewards_via_func`` runs
``reward_func([query], [prompt], [label])`` once per response in ``asyncio.to_thread``, and
``samples_generator`` stores ``torch.tensor([rewards])``.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from sweetspot_client import SweetspotClient

RECIPE = Path(__file__).parents[2] / "examples" / "openrlhf_reward.py"
GROUP = 4


def load_recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reward_func", RECIPE)  # as OpenRLHF does
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def openrlhf_calls(reward_func: Any, rows: list[tuple[str, str, str]]) -> list[Any]:
    results = await asyncio.gather(
        *(asyncio.to_thread(reward_func, [q], [p], [lab]) for q, p, lab in rows)
    )
    return [r["rewards"] for r in results]


def test_the_recipe_rewards_and_reports_each_full_group(
    service_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWEETSPOT_URL", service_url)
    monkeypatch.setenv("SWEETSPOT_RUN", "openrlhf-recipe")
    monkeypatch.setenv("SWEETSPOT_GROUP_SIZE", str(GROUP))
    recipe = load_recipe()
    prompts = [f"<user>What is {i} + 1?</user>" for i in range(3)]
    rows = []
    for i, prompt in enumerate(prompts):
        for j in range(GROUP):
            right = j < i + 1
            rows.append((f"{prompt} Answer: {i + 1 if right else 0}", prompt, str(i + 1)))
    rows.append((f"{prompts[0]} 7", prompts[0], "1"))  # a fifth response: a group not yet full
    rewards = asyncio.run(openrlhf_calls(recipe.reward_func, rows))
    assert [float(torch.tensor([r])[0]) for r in rewards] == [
        float(j < i + 1) for i in range(3) for j in range(GROUP)
    ] + [0.0]
    assert recipe.reporter().reporter.flush(30)
    with SweetspotClient(base_url=service_url, run="openrlhf-recipe") as client:
        assert client.get_run("openrlhf-recipe").model_version == 3  # one update per group
        stats = client.stats(prompts).stats
    assert [s.count for s in stats] == [GROUP] * 3
    assert [s.mean_reward for s in stats] == pytest.approx([0.25, 0.5, 0.75])
    recipe.reporter().reporter.close()


def test_score_reads_the_answer_after_the_prompt() -> None:
    recipe = load_recipe()
    assert recipe.score("Q: 2+2? Answer: 4", "Q: 2+2?", "4") == 1.0
    assert recipe.score("Q: 2+2? I think 5", "Q: 2+2?", "4") == 0.0
    assert recipe.score("Q: 2+2? no idea", "Q: 2+2?", "4") == 0.0
