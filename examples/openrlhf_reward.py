"""Sweetspot recipe for OpenRLHF: a ``--remote_rm_url`` reward-function file that also
reports each prompt's group of rewards to Sweetspot (the value model learns online).

    SWEETSPOT_URL=http://sweetspot:8000 SWEETSPOT_RUN=my-job SWEETSPOT_GROUP_SIZE=8 \\
    python -m openrlhf.cli.train_ppo_ray ... --n_samples_per_prompt 8 \\
        --remote_rm_url examples/openrlhf_reward.py

OpenRLHF (0.11) loads this file in each vLLM engine actor and calls
``reward_func(queries, prompts, labels)`` once per response (lists of one), from a thread;
``queries`` is prompt + response as text, ``labels`` the dataset's ``--label_key``. It reads
``rewards`` (used for training), ``scores`` and ``extra_logs`` from the returned dict.

What the recipe adds: each reward, mapped to [0, 1] (``SWEETSPOT_SUCCESS_THRESHOLD``, default
0.5: reward >= it counts 1), is kept until the prompt has ``SWEETSPOT_GROUP_SIZE`` of them,
then the group is queued for the service in the background (retries with one idempotency
key per group, bounded queue; training never waits). Limits, as OpenRLHF gives no hook:
prompts are not *selected* by Sweetspot here, only scored and learned; a prompt's responses
must reach the same engine actor to form a group (OpenRLHF sends a prompt's samples to one
engine); keys are not stable across restarts, so a restarted job may report a group twice.
Replace ``score`` with your task's verifier.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import uuid
from collections import defaultdict
from typing import Any

from sweetspot_client import ConflictError, SweetspotClient
from sweetspot_client.integrations import BackgroundReporter, PendingReport, SweetspotConfig

ANSWER = re.compile(r"Answer:\s*(-?[\d.,]+)")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def score(query: str, prompt: str, label: str) -> float:
    """1.0 when the response's answer (after the last ``Answer:``, else its last number)
    equals ``label``. ``query`` starts with ``prompt``; only the rest is the response."""
    response = query[len(prompt) :] if query.startswith(prompt) else query
    found = ANSWER.findall(response) or NUMBER.findall(response)
    if not found:
        return 0.0
    return float(found[-1].replace(",", "").rstrip(".") == str(label).strip())


class GroupReporter:
    """Collects rewards per prompt; a full group becomes one report (one update)."""

    def __init__(self, config: SweetspotConfig, group_size: int, client: Any = None) -> None:
        if group_size < 1:
            raise ValueError(f"SWEETSPOT_GROUP_SIZE must be >= 1, got {group_size}")
        self.config = config
        self.group_size = group_size
        self.job = uuid.uuid4().hex[:12]
        self._client = client or SweetspotClient(
            base_url=config.url, api_key=config.api_key, run=config.run, timeout=60
        )
        if config.run != "default":
            with contextlib.suppress(ConflictError):  # it exists already
                self._client.create_run(config.run)
        self.reporter = BackgroundReporter(self._client, max_pending=config.max_pending_reports)
        self._groups: dict[str, list[float]] = defaultdict(list)
        self._reported: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()  # OpenRLHF calls reward_func from several threads

    def add(self, prompt: str, reward: float) -> None:
        mapped = self.config.map_reward(reward)
        with self._lock:
            group = self._groups[prompt]
            group.append(mapped)
            if len(group) < self.group_size:
                return
            del self._groups[prompt]
            nth = self._reported[prompt]
            self._reported[prompt] += 1
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        key = f"sweetspot-openrlhf-{self.job}-{self.config.run}-{digest}-{nth}"
        self.reporter.submit(PendingReport(key, nth, [prompt], [group]))


_reporter: GroupReporter | None = None
_reporter_lock = threading.Lock()


def reporter() -> GroupReporter:
    """The process's reporter, configured from ``SWEETSPOT_*`` environment variables."""
    global _reporter
    with _reporter_lock:
        if _reporter is None:
            config = SweetspotConfig(
                url=os.environ.get("SWEETSPOT_URL", "http://127.0.0.1:8000"),
                api_key=os.environ.get("SWEETSPOT_API_KEY"),
                run=os.environ.get("SWEETSPOT_RUN", "default"),
                success_threshold=float(os.environ.get("SWEETSPOT_SUCCESS_THRESHOLD", "0.5")),
            )
            _reporter = GroupReporter(config, int(os.environ.get("SWEETSPOT_GROUP_SIZE", "8")))
        return _reporter


def reward_func(queries: list[str], prompts: list[str], labels: list[str]) -> dict[str, Any]:
    """OpenRLHF's reward-function interface; rewards for training, and a report per group."""
    rewards = [score(q, p, lab) for q, p, lab in zip(queries, prompts, labels, strict=True)]
    group = reporter()
    for prompt, reward in zip(prompts, rewards, strict=True):
        group.add(prompt, reward)
    value: float | list[float] = rewards[0] if len(rewards) == 1 else rewards
    return {"rewards": value, "scores": value, "extra_logs": {}}
