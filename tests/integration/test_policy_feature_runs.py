"""Policy features end to end against a real service: the bundled trainer's
``--value-features policy`` and ``TrainerCurriculum`` with a features function (the path a
verl user takes). TRL's ``features="policy"`` is in test_trl.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweetspot_client import BadRequestError, SweetspotClient
from sweetspot_client.integrations import SweetspotConfig, TrainerCurriculum
from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.train import run

POOL = [{"prompt": f"What is {i} + {i % 5}?"} for i in range(24)]


def vector(record: dict[str, str]) -> list[float]:
    """A made-up 4-number vector per record (a user's own features function)."""
    text = record["prompt"]
    return [float(len(text)), float(text.count("1")), 1.0, -1.0]


def test_a_features_function_sends_each_chosen_prompts_vector(service_url: str) -> None:
    calls: list[int] = []

    def features(records: list[dict[str, str]]) -> list[list[float]]:
        calls.append(len(records))
        return [vector(r) for r in records]

    config = SweetspotConfig(url=service_url, run="fn-features", features=features, feature_width=4)
    curriculum = TrainerCurriculum(config, POOL, seed=0)
    try:
        selection = curriculum.select(3)
        assert calls == [12]  # k·m candidates, once
        assert selection.features == [vector(POOL[i]) for i in selection.indices]
        assert selection.features_seconds is not None
        assert "sweetspot/features_seconds" in selection.metrics()
        # rewards arrive in another order than the selection's: each keeps its own vector
        rows = [i for i in reversed(selection.indices) for _ in range(4)]
        curriculum.report(selection, rows, [1.0, 0.0, 0.0, 0.0] * 3)
        assert curriculum.flush(60) and curriculum.reporter.counts.sent == 1
    finally:
        curriculum.close()
    with SweetspotClient(base_url=service_url, run="fn-features", timeout=30) as client:
        assert client.get_run("fn-features").feature_width == 4
        assert client.get_run("fn-features").model_version == 1
        prompts = [curriculum.curriculum.prompt(i) for i in selection.indices]
        assert [s.count for s in client.stats(prompts).stats] == [4, 4, 4]
        with pytest.raises(BadRequestError, match="feature"):
            client.score(prompts)  # a feature run refuses prompts without their vectors


def test_the_bundled_trainer_sends_its_policys_prefill(
    tmp_path: Path, service_url: str, tiny_llama: Path
) -> None:
    cfg = TrainConfig(
        model=str(tiny_llama),
        selection="pcl",
        value_features="policy",
        service_url=service_url,
        service_run="trainer-policy",
        steps=2,
        m=2,
        n=2,
        k=2,
        max_new_tokens=4,
        task_size=16,
        engine="transformers",
        output_dir=tmp_path / "run",
        progress=False,
        plot=False,
    )
    records = run(cfg)
    for r in records:
        assert 0 < r["time_prefill"] <= r["time_select"]
        assert r["prefill_share"] == pytest.approx(r["time_prefill"] / r["time_step"])
    with SweetspotClient(base_url=service_url, run="trainer-policy", timeout=30) as client:
        run_info = client.get_run("trainer-policy")
        assert run_info.feature_width == 32  # the tiny policy's hidden size
        assert run_info.model_version == 2  # both steps' reports, with their vectors
        with pytest.raises(BadRequestError, match="feature"):
            client.score(["What is 1 + 1?"])
