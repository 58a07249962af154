"""The harness's reward (``reward.custom_reward_function.path``): varied but deterministic.

A random tiny model never answers right, so a correctness rule would score every response
0 and per-prompt statistics would say nothing; this scores a response by its length.

With ``VERL_CPU_GATE_DIR`` set, it is also where a test steps in between verl's steps: verl
scores exactly ``M·N`` responses per step (no validation runs), so the ``c``-th call belongs
to step ``c // (M·N) + 1``; if ``<gate>/hold-<step>`` exists at the step's first call, the
call writes ``<gate>/reached-<step>`` and waits (polling, with a deadline) until the test
removes the hold file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sweetspot_service.launcher import wait_until
from verl_cpu import M, N

GATE = "VERL_CPU_GATE_DIR"
HOLD_TIMEOUT_S = 300.0


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: Any = None, **_: Any
) -> float:
    if gate := os.environ.get(GATE):
        _hold_if_asked(Path(gate))
    return (len(solution_str) % 4) / 3


def _hold_if_asked(gate: Path) -> None:
    with (gate / "calls").open("a+") as calls:
        fcntl.flock(calls, fcntl.LOCK_EX)
        calls.seek(0)
        count = len(calls.read())
        calls.write(".")
    step, first = count // (M * N) + 1, count % (M * N) == 0
    hold = gate / f"hold-{step}"
    if first and hold.exists():
        (gate / f"reached-{step}").touch()
        wait_until(
            lambda: not hold.exists(), f"the test to release step {step}", timeout=HOLD_TIMEOUT_S
        )
