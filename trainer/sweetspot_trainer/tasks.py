"""Tasks: a pool of problems and the verifier that rewards a completion for one of them.

``make_task(spec)`` builds one from a spec string:

- ``chain_sum``: reasoning-gym's ``chain_sum`` arithmetic at several difficulty settings
  (``CHAIN_SUM_MIX``), so the pool spans prompts SmolLM2-135M solves often to never;
- ``reasoning_gym:<name>`` or ``reasoning_gym:<name>?key=value&key=value``: any
  reasoning-gym dataset with its config options, scored by its own ``score_answer``;
- ``jsonl:<path>``: a user file, one ``{"prompt": ..., "answer": ...}`` object a line
  (optional ``"id"``, ``"difficulty"``), scored with math-verify.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from sweetspot_trainer.rewards import (
    ANSWER_INSTRUCTION,
    ReasoningGymDataset,
    math_reward,
    reasoning_gym_reward,
)


@dataclass(frozen=True)
class Problem:
    """One prompt of the pool. ``prompt`` is the user text before the chat template."""

    id: str
    prompt: str
    answer: str
    difficulty: str
    entry: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Task:
    name: str
    problems: list[Problem]
    scorer: Callable[[Problem, str], float] = field(repr=False)

    def reward(self, problem: Problem, completion: str) -> float:
        """Reward in [0, 1] of ``completion`` as an answer to ``problem``."""
        return self.scorer(problem, completion)


# (label, reasoning-gym chain_sum options): easiest first. Measured with SmolLM2-135M at
# temperature 1.0 (see bench/value_model/ground_truth.py and docs/results.md).
CHAIN_SUM_MIX: list[tuple[str, dict[str, int]]] = [
    ("2x1", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}),
    ("2x2", {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2}),
    ("3x1", {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1}),
    ("3x2", {"min_terms": 3, "max_terms": 3, "min_digits": 2, "max_digits": 2}),
]


def _with_instruction(question: str) -> str:
    return f"{question}\n{ANSWER_INSTRUCTION}"


def _reasoning_gym_problems(
    name: str, options: dict[str, Any], *, size: int, seed: int, label: str, prefix: str
) -> tuple[list[Problem], ReasoningGymDataset]:
    import reasoning_gym

    try:
        dataset = reasoning_gym.create_dataset(name, size=size, seed=seed, **options)
    except (TypeError, AssertionError) as exc:
        raise ValueError(f"reasoning-gym {name!r} rejected options {options}: {exc}") from exc
    problems = [
        Problem(
            id=f"{prefix}-{i}",
            prompt=_with_instruction(entry["question"]),
            answer=str(entry["answer"]),
            difficulty=label,
            entry=entry,
        )
        for i, entry in enumerate(dataset)
    ]
    return problems, dataset


def _mixed_task(
    name: str,
    mix: list[tuple[str, dict[str, int]]],
    *,
    size: int,
    seed: int,
    partial_credit: bool = False,
) -> Task:
    """Equal parts of each setting in ``mix`` (the first ones take the remainder)."""
    problems: list[Problem] = []
    datasets: dict[str, ReasoningGymDataset] = {}
    for j, (label, options) in enumerate(mix):
        part = size // len(mix) + (1 if j < size % len(mix) else 0)
        if part == 0:
            continue
        batch, dataset = _reasoning_gym_problems(
            name, options, size=part, seed=seed * 1000 + j, label=label, prefix=f"{name}-{label}"
        )
        problems += batch
        datasets[label] = dataset

    def score(problem: Problem, completion: str) -> float:
        return reasoning_gym_reward(
            datasets[problem.difficulty], problem.entry, completion, partial=partial_credit
        )

    return Task(name=name, problems=problems, scorer=score)


def _parse_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _jsonl_task(path: Path) -> Task:
    if not path.is_file():
        raise ValueError(f"jsonl task file {path} does not exist")
    problems: list[Problem] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not {"prompt", "answer"} <= row.keys():
            raise ValueError(f'{path}:{lineno}: need an object with "prompt" and "answer"')
        problems.append(
            Problem(
                id=str(row.get("id", f"{path.stem}-{lineno}")),
                prompt=str(row["prompt"]),
                answer=str(row["answer"]),
                difficulty=str(row.get("difficulty", "")),
                entry=row,
            )
        )
    if not problems:
        raise ValueError(f"{path} holds no problems")
    return Task(
        name=f"jsonl:{path}", problems=problems, scorer=lambda p, c: math_reward(p.answer, c)
    )


TASK_KINDS = ("chain_sum", "reasoning_gym:<name>[?key=value&...]", "jsonl:<path>")


def make_task(spec: str, *, seed: int = 0, size: int = 512, partial_credit: bool = False) -> Task:
    """Build the task ``spec`` names (see the module docstring); ``size`` problems.

    ``partial_credit`` keeps reasoning-gym's partial scores instead of binarising them
    (``rewards.reasoning_gym_reward``); math-verify (JSONL tasks) is binary either way.
    """
    if spec == "chain_sum":
        return _mixed_task(
            "chain_sum", CHAIN_SUM_MIX, size=size, seed=seed, partial_credit=partial_credit
        )
    kind, _, rest = spec.partition(":")
    if kind == "reasoning_gym" and rest:
        name, _, query = rest.partition("?")
        options = _parse_options(query)
        return _mixed_task(
            name, [(name, options)], size=size, seed=seed, partial_credit=partial_credit
        )
    if kind == "jsonl" and rest:
        return _jsonl_task(Path(rest))
    raise ValueError(f"unknown task {spec!r}; use one of {', '.join(TASK_KINDS)}")


def split_holdout(
    problems: list[Problem], holdout: int, *, seed: int
) -> tuple[list[Problem], list[Problem]]:
    """(training pool, ``holdout`` problems for evaluation), a seeded random split."""
    if holdout >= len(problems):
        raise ValueError(f"holdout {holdout} leaves no training problems out of {len(problems)}")
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    held = set(order[:holdout])
    return (
        [p for i, p in enumerate(problems) if i not in held],
        [problems[i] for i in sorted(held)],
    )
