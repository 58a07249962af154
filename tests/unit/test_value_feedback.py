"""When the trainer's rewards reach the value model: the real loop (``train.train``) with PCL
over an in-process HTTP fake of the service, a fake engine and a recording policy update."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from sweetspot_client import SweetspotClient
from sweetspot_trainer import train as train_module
from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.feedback import StrategyFeedback
from sweetspot_trainer.rollout import Rollout
from sweetspot_trainer.selection import Selection
from sweetspot_trainer.tasks import Problem, Task

STEPS = 3
DEADLINE_S = 10.0


class Recorder:
    """The fake service, engine and policy update append to one event list."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.version = 0
        self.policy_step = 0

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def seen(self, event: str) -> bool:
        with self.lock:
            return event in self.events

    def poll(self, event: str) -> bool:
        deadline = time.monotonic() + DEADLINE_S
        while not self.seen(event):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/v1/select":
            self.add(f"select@v{self.version}")
            m = body["m"]
            return httpx.Response(
                200,
                json={
                    "indices": list(range(m)),
                    "scores": [0.5] * m,
                    "candidate_scores": [0.5] * len(body["prompts"]),
                    "model_version": self.version,
                },
            )
        assert request.url.path == "/v1/update", request.url.path
        step = self.version + 1
        self.add(f"update-sent{step}")
        # The value model "trains" until this step's policy update has begun: in overlapped
        # mode that proves the two run at the same time; in blocking mode it already has.
        assert self.poll(f"policy-update{step}"), "the policy update never started"
        self.version = step
        self.add(f"update-done{step}")
        return httpx.Response(
            200,
            json={
                "model_version": step,
                "loss": 0.1,
                "mse_before": 0.2,
                "mae_before": 0.3,
                "num_prompts": len(body["prompts"]),
            },
        )


class FakeEngine:
    name = "fake"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def generate(
        self, prompts: list[str], *, n: int, max_new_tokens: int, temperature: float
    ) -> list[list[Rollout]]:
        self.recorder.add("generate")
        return [[Rollout([1], [2, 3], "Answer: 1", True) for _ in range(n)] for _ in prompts]

    def before_update(self) -> None: ...

    def sync_weights(self, policy: torch.nn.Module) -> None:
        self.recorder.add("sync")

    def close(self) -> None: ...


class FakeTokenizer:
    pad_token_id = 0


def run_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> tuple[Recorder, list[dict[str, Any]]]:
    recorder = Recorder()
    problems = [Problem(id=f"q{i}", prompt=f"q{i}", answer="1", difficulty="") for i in range(16)]
    task = Task("fake", problems, scorer=lambda p, c: float(int(p.id[1:]) % 2))

    def fake_update(*args: Any, **kwargs: Any) -> dict[str, float]:
        recorder.policy_step += 1
        step = recorder.policy_step
        if mode == "overlapped":
            assert recorder.poll(f"update-sent{step}"), "rewards were not sent before the update"
        recorder.add(f"policy-update{step}")
        return {"loss": 0.0}

    monkeypatch.setattr(train_module, "make_task", lambda *a, **k: task)
    monkeypatch.setattr(
        train_module,
        "load_policy",
        lambda *a, **k: (torch.nn.Linear(1, 1), FakeTokenizer()),
    )
    monkeypatch.setattr(train_module, "make_engine", lambda *a, **k: FakeEngine(recorder))
    monkeypatch.setattr(train_module, "grpo_update", fake_update)
    cfg = TrainConfig(
        selection="pcl",
        value_update=mode,  # type: ignore[arg-type]
        steps=STEPS,
        m=2,
        n=2,
        k=2,
        task_size=16,
        output_dir=tmp_path / mode,
        progress=False,
        plot=False,
    )
    with SweetspotClient(transport=httpx.MockTransport(recorder.handler)) as client:
        records = train_module.train(cfg, client)
    return recorder, records


def test_overlapped_sends_rewards_before_the_policy_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, records = run_loop(tmp_path, monkeypatch, "overlapped")
    events = recorder.events
    for step in range(1, STEPS + 1):
        assert events.index(f"update-sent{step}") < events.index(f"policy-update{step}")
    # selections use whatever version is applied: never more than one step behind
    for r in records:
        assert r["step"] - 2 <= r["selection_model_version"] <= r["step"] - 1
        assert r["updates_behind"] in (0, 1)
        # a step may be written before any report is answered (then it has no value_* yet)
        assert r.get("value_step", 0) <= r["step"]
    # the last step waits until the service holds every report
    assert records[-1]["value_version"] == STEPS and records[-1]["value_step"] == STEPS
    assert events[-1] in ("sync", f"update-done{STEPS}")
    for r in records:
        parts = ("time_select", "time_generate", "time_update", "time_sync", "time_value_wait")
        assert r["time_step"] == pytest.approx(sum(r[p] for p in parts))


def test_blocking_keeps_the_strict_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder, records = run_loop(tmp_path, monkeypatch, "blocking")
    expected: list[str] = []
    for step in range(1, STEPS + 1):
        expected += [
            f"select@v{step - 1}",
            "generate",
            f"policy-update{step}",
            "sync",
            f"update-sent{step}",
            f"update-done{step}",
        ]
    assert recorder.events == expected
    assert [r["selection_model_version"] for r in records] == [0, 1, 2]
    assert [r["value_version"] for r in records] == [1.0, 2.0, 3.0]
    assert [r["updates_behind"] for r in records] == [0, 0, 0]
    assert all(r["value_step"] == r["step"] for r in records)


class LocalStrategy:
    """A strategy with its own state: observed in the loop even in overlapped mode."""

    name = "local"
    remote = False

    def __init__(self) -> None:
        self.threads: list[str] = []

    def select(self) -> Selection:
        return Selection([])

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        self.threads.append(threading.current_thread().name)
        return {"seen": float(len(rewards))}


def test_local_strategies_are_observed_in_the_loop() -> None:
    strategy = LocalStrategy()
    feedback = StrategyFeedback(strategy, mode="overlapped", max_lag=1)
    assert not feedback.background
    feedback.send(1, Selection([]), [[1.0, 0.0]])
    assert feedback.unacknowledged() == 0
    assert feedback.latest() == {"seen": 1.0}
    assert strategy.threads == [threading.current_thread().name]
    feedback.close()


class FailingRemote(LocalStrategy):
    remote = True

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        raise RuntimeError("service down")


def test_a_failed_background_report_raises_in_the_loop() -> None:
    feedback = StrategyFeedback(FailingRemote(), mode="overlapped", max_lag=0)
    assert feedback.background
    feedback.send(1, Selection([]), [[1.0]])
    with pytest.raises(RuntimeError, match="service down"):
        feedback.wait_before_select()
    feedback.close()


def test_bad_options_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="blocking"):
        StrategyFeedback(LocalStrategy(), mode="eager", max_lag=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_lag"):
        StrategyFeedback(LocalStrategy(), mode="blocking", max_lag=-1)


@pytest.mark.parametrize(
    ("service_url", "device", "order"),
    [
        (None, "cpu", "blocking"),  # an embedded service trains on the policy's cores
        ("http://sweetspot:8000", "cpu", "overlapped"),
        (None, "cuda", "overlapped"),
    ],
)
def test_auto_blocks_only_where_the_value_model_shares_the_policys_cores(
    tmp_path: Path, service_url: str | None, device: str, order: str
) -> None:
    cfg = TrainConfig(service_url=service_url, device=device, output_dir=tmp_path)
    assert cfg.value_update == "auto" and cfg.value_update_order == order
    explicit = TrainConfig(value_update="overlapped", device="cpu", output_dir=tmp_path)
    assert explicit.value_update_order == "overlapped"
