"""TRL's own ``GRPOTrainer`` (CPU, a tiny Llama) choosing prompts through a real service.

Each job runs ``trl_job.py``: the reward functions record every prompt and reward TRL saw, the
main process writes the selections Sweetspot made. The tests compare the three views: what
the service chose, what TRL trained on, and what the service recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="the TRL extra is not installed: pip install './client[trl]'")

from transformers import TrainerCallback

from sweetspot_client import BadRequestError, SweetspotClient
from sweetspot_service.testing import RedisServer, ServiceProcess, free_port

JOB = Path(__file__).with_name("trl_job.py")
REWARD_HIGH = 1.5  # the job's two reward functions sum to [0, 1.5]; it declares that range


def run_job(tmp: Path, url: str, model: Path, *extra: str, processes: int = 1) -> Path:
    """Run the job (``processes`` > 1: under ``accelerate launch``); return its record dir."""
    record = tmp / "record"
    args = ["--url", url, "--model", str(model), "--output-dir", str(tmp / "out")]
    args += ["--record-dir", str(record), *extra]
    if processes == 1:
        command = [sys.executable, str(JOB), *args]
    else:
        # torchrun underneath; on a machine without GPUs the processes use gloo on the CPU.
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        command += ["--num_processes", str(processes), "--num_machines", "1"]
        command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", str(free_port()), str(JOB), *args]
    log = tmp / "job.log"
    with log.open("ab") as out:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"TRL job failed ({done.returncode}):\n{log.read_text()[-4000:]}")
    return record


def rewards_seen(record: Path) -> dict[int, dict[int, list[tuple[str, float]]]]:
    """{rank: {global step: [(prompt, combined reward), ...]}} as TRL's reward functions saw."""
    seen: dict[int, dict[int, list[tuple[str, float]]]] = {}
    for path in sorted(record.glob("rewards-*.jsonl")):
        by_step: dict[int, list[tuple[str, float]]] = defaultdict(list)
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            by_step[entry["step"]].append((entry["prompt"], entry["reward"]))
        seen[int(path.stem.split("-")[1])] = dict(by_step)
    return seen


def summary(record: Path, n: int = 0) -> dict[str, Any]:
    return json.loads((record / f"summary-{n}.json").read_text())


def assert_trained_on_selections(record: Path, *, group: int = 4) -> None:
    """At every generation batch, the prompts TRL rewarded are exactly the selected ones,
    each ``group`` times, split across processes."""
    seen = rewards_seen(record)
    selections = summary(record)["selections"]
    steps = sorted(next(iter(seen.values())))
    assert len(steps) == len(selections)
    for step, selection in zip(steps, selections, strict=True):
        assert selection["fallback"] is None and selection["model_version"] is not None
        everyone: Counter[str] = Counter()
        for by_step in seen.values():
            everyone.update(prompt for prompt, _ in by_step[step])
        assert everyone == {prompt: group for prompt in selection["prompts"]}


def assert_service_recorded(client: SweetspotClient, record: Path) -> None:
    """The service's per-prompt statistics equal TRL's rewards, mapped to [0, 1]."""
    observed: dict[str, list[float]] = defaultdict(list)
    for by_step in rewards_seen(record).values():
        for rows in by_step.values():
            for prompt, reward in rows:
                observed[prompt].append(reward / REWARD_HIGH)
    prompts = sorted(observed)
    for prompt, stats in zip(prompts, client.stats(prompts).stats, strict=True):
        assert stats.count == len(observed[prompt])
        assert stats.mean_reward == pytest.approx(sum(observed[prompt]) / stats.count)


@pytest.fixture
def run_client(service_url: str, request: pytest.FixtureRequest) -> Iterator[SweetspotClient]:
    """A client on a run of its own (the module's service is shared)."""
    name = request.node.name.replace("_", "-")[:60]
    with SweetspotClient(base_url=service_url, run=name, timeout=30) as client:
        yield client


@pytest.mark.slow
def test_grpo_trainer_trains_on_the_service_selections(
    tmp_path: Path, service_url: str, tiny_llama: Path, run_client: SweetspotClient
) -> None:
    # gradient accumulation 2: TRL generates once per 2 micro-batches (steps_per_generation)
    record = run_job(
        tmp_path, service_url, tiny_llama, "--run", run_client.run, "--grad-accum", "2"
    )
    assert_trained_on_selections(record)
    assert run_client.get_run(run_client.run).model_version == 3  # one update per batch
    assert_service_recorded(run_client, record)
    logs = summary(record)["logs"]
    assert [entry["sweetspot/uniform_fallback"] for entry in logs] == [0.0, 0.0, 0.0]
    assert all("sweetspot/model_version" in entry for entry in logs)
    assert "sweetspot/mae_before" in logs[-1]


@pytest.mark.slow
def test_policy_features_are_the_trainers_own_prefill(
    tmp_path: Path, service_url: str, tiny_llama: Path, run_client: SweetspotClient
) -> None:
    record = run_job(
        tmp_path, service_url, tiny_llama, "--run", run_client.run, "--features", "policy"
    )
    assert_trained_on_selections(record)
    run = run_client.get_run(run_client.run)
    assert run.feature_width == 32  # the tiny Llama's hidden size: a feature run
    assert run.model_version == 3  # every batch's report carried vectors the run accepted
    assert_service_recorded(run_client, record)
    for selection in summary(record)["selections"]:
        assert len(selection["features"]) == 1 and len(selection["features"][0]) == 32
        assert selection["features_seconds"] > 0
    assert all(entry["sweetspot/features_seconds"] > 0 for entry in summary(record)["logs"])
    # the vectors are the model's own: the service scores them, and refuses bare text
    prompts = summary(record)["selections"][0]["prompts"]
    vectors = summary(record)["selections"][0]["features"]
    assert 0.0 <= run_client.score(prompts, features=vectors).scores[0] <= 1.0
    with pytest.raises(BadRequestError, match="feature"):
        run_client.score(prompts)


@pytest.mark.slow
def test_two_processes_train_one_selection_and_report_once(
    tmp_path: Path, service_url: str, tiny_llama: Path, run_client: SweetspotClient
) -> None:
    record = run_job(tmp_path, service_url, tiny_llama, "--run", run_client.run, processes=2)
    seen = rewards_seen(record)
    assert sorted(seen) == [0, 1]
    assert len(list(record.glob("summary-*.json"))) == 1  # only the main process selects
    assert_trained_on_selections(record)
    for selection in summary(record)["selections"]:
        halves = [{p for p, _ in seen[rank][selection["step"]]} for rank in (0, 1)]
        assert halves[0] | halves[1] == set(selection["prompts"])
    assert run_client.get_run(run_client.run).model_version == 3  # not once per process
    assert_service_recorded(run_client, record)


@pytest.mark.slow
def test_resume_applies_each_step_once_and_continues_the_pass(
    tmp_path: Path, service_url: str, tiny_llama: Path, run_client: SweetspotClient
) -> None:
    common = ["--run", run_client.run, "--save-steps", "2"]
    first = run_job(tmp_path, service_url, tiny_llama, *common, "--max-steps", "3")
    assert (tmp_path / "out" / "checkpoint-2" / "sweetspot_state.json").exists()
    assert run_client.get_run(run_client.run).model_version == 3
    # The job dies after step 3, before checkpoint-3 is written; it resumes from checkpoint-2
    # and so sends step 3 again.
    shutil.rmtree(tmp_path / "out" / "checkpoint-3")
    run_job(tmp_path, service_url, tiny_llama, *common, "--max-steps", "4", "--resume")
    before, after = summary(first, 0), summary(first, 1)
    assert after["selections"][0]["step"] == 2  # the step counter came back
    assert after["selections"][0]["candidates"] == before["selections"][2]["candidates"]
    # Step 3 redone: its report is keyed by step and body, so the same observations are
    # answered from step 3's record (not applied again) and other ones (the value model had
    # moved on; the policy may answer otherwise) are applied; never refused (issue 19.12).
    assert after["counts"]["conflicts"] == 0
    version = run_client.get_run(run_client.run).model_version
    assert version in (4, 5)
    prompts = [json.loads(line)["prompt"] for line in (first / "rewards-0.jsonl").open()]
    counts = run_client.stats(sorted(set(prompts))).stats
    assert sum(s.count for s in counts) == version * 4  # each applied step: 1 prompt x 4


class _Outage(TrainerCallback):  # type: ignore[misc]
    """Stops the service after step 1 and starts it again after step 3."""

    def __init__(self, service: ServiceProcess) -> None:
        self.service = service

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 1:
            self.service.stop()
        elif state.global_step == 3:
            self.service.start()


@pytest.mark.slow
def test_outage_falls_back_to_uniform_and_selection_resumes(
    tmp_path: Path, tiny_llama: Path, redis_server: RedisServer
) -> None:
    import trl_job

    service = ServiceProcess(
        ["--backbone", "minilm", "--redis-url", redis_server.url], tmp_path / "service.log"
    ).start()
    try:
        argv = ["--url", service.url, "--model", str(tiny_llama), "--max-steps", "4"]
        argv += ["--output-dir", str(tmp_path / "out"), "--record-dir", str(tmp_path / "rec")]
        args = trl_job.parse_args([*argv, "--retry-after", "0"])
        trainer = trl_job.build_trainer(args, callbacks=[_Outage(service)])
        trainer.train()
        result = trl_job.write_summary(trainer, tmp_path / "rec")
        fallbacks = [s["fallback"] is not None for s in result["selections"]]
        assert fallbacks == [False, True, True, False]
        logged = [entry["sweetspot/uniform_fallback"] for entry in result["logs"]]
        assert logged == [0.0, 1.0, 1.0, 0.0]
        # The two reports made during the outage were retried with their keys and landed.
        assert result["counts"]["sent"] == 4 and result["counts"]["dropped"] == 0
        with SweetspotClient(base_url=service.url) as client:
            assert client.get_run("default").model_version == 4
        trainer.sweetspot.close()
    finally:
        service.stop()


@pytest.mark.slow
def test_the_example_script_trains_two_steps(
    tmp_path: Path, service_url: str, tiny_llama: Path
) -> None:
    example = Path(__file__).parents[2] / "examples" / "trl_grpo.py"
    command = [sys.executable, str(example), "--steps", "2", "--url", service_url]
    command += ["--model", str(tiny_llama), "--output-dir", str(tmp_path), "--pool", "32"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "done: 2 steps" in done.stdout
    assert "'sweetspot/model_version'" in done.stdout  # TRL logged the integration's metrics
