"""Real PCL steps: SmolLM2 policy, real reasoning-gym task, real sweetspot-serve process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.rollout import vllm_available
from sweetspot_trainer.train import run

pytestmark = pytest.mark.slow


def test_pcl_steps_against_the_real_service(tmp_path: Path) -> None:
    cfg = TrainConfig(
        selection="pcl",
        steps=3,
        m=2,
        n=4,
        k=3,
        max_new_tokens=24,
        task_size=48,
        holdout=4,
        eval_every=3,
        service_backbone="smollm2",
        output_dir=tmp_path / "run",
        progress=False,
        lr=1e-4,
    )
    records = run(cfg)

    assert [r["step"] for r in records] == [1, 2, 3]
    assert {r["engine"] for r in records} == {"vllm" if vllm_available() else "transformers"}
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    assert (tmp_path / "run" / "run.png").stat().st_size > 10_000
    for r in records:
        assert len(r["predicted"]) == len(r["observed"]) == 2
        assert all(0.0 <= p <= 1.0 for p in r["predicted"])
        assert 0.0 <= r["effective_ratio"] <= 1.0
        assert r["time_generate"] > 0 and r["time_update"] > 0 and r["time_select"] > 0
        if "value_mae" in r:  # overlapped: a step may be logged before its report is answered
            assert 0.0 <= r["value_mae"] <= 1.0 and r["value_step"] <= r["step"]
    # the service learned online, one model version per step; the rewards went out before
    # each policy update (overlapped, the default), so a selection may be one version behind
    for r in records:
        assert r["step"] - 2 <= r["selection_model_version"] <= r["step"] - 1
        assert r["updates_behind"] in (0, 1)
    assert records[-1]["value_step"] == 3 and records[-1]["value_version"] == 3.0
    # the first prediction comes from a fresh head, later ones from a trained one
    assert records[0]["predicted"] == pytest.approx([0.5, 0.5])
    assert "eval_accuracy" in records[-1]


def test_uniform_needs_no_service(tmp_path: Path) -> None:
    cfg = TrainConfig(
        selection="uniform",
        steps=1,
        m=2,
        n=2,
        max_new_tokens=8,
        task_size=8,
        holdout=2,
        eval_samples=3,  # mean@3 on the 2 held-out problems at the last step
        engine="transformers",
        output_dir=tmp_path / "run",
        progress=False,
        plot=False,
    )
    (record,) = run(cfg)
    per_problem = record["eval_mean_at_n_per_problem"]
    assert len(per_problem) == 2 and all(v in (0.0, 1 / 3, 2 / 3, 1.0) for v in per_problem)
    assert record["eval_mean_at_n"] == pytest.approx(sum(per_problem) / 2)
    assert record["engine"] == "transformers"
    assert record["predicted"] is None and "value_mae" not in record
    assert not (tmp_path / "run" / "service.log").exists()


@pytest.mark.parametrize("selection", ["dynamic_sampling", "rollout_screen", "bayes", "dps"])
def test_baselines_run_in_the_real_loop(tmp_path: Path, selection: str) -> None:
    cfg = TrainConfig(
        selection=selection,  # type: ignore[arg-type]
        steps=2,
        m=2,
        n=2,
        k=2,
        max_new_tokens=8,
        task_size=16,
        engine="transformers",
        screen_samples=1,
        dynamic_max_rounds=2,
        output_dir=tmp_path / "run",
        progress=False,
        plot=False,
    )
    records = run(cfg)
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert r["selection"] == selection
        assert len(r["observed"]) == 2
        assert r["rollouts"] == r["extra_rollouts"] + 2 * 2
    if selection == "rollout_screen":
        assert all(r["extra_rollouts"] == 2 * 2 * 1 for r in records)
