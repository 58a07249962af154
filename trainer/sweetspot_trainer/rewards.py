"""Verifiable rewards: a lenient answer parser, then the task's own verifier.

The parser decides whether a small policy gets any learning signal at all (measured here:
SmolLM2 on 1-digit ``chain_sum`` scored 0–0.5 per prompt with this parser, about 0.02 with a
strict first-line one), so it is deliberately forgiving: the text after the last
``Answer:`` marker, else the last number in the completion, else its last non-empty line.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

ANSWER_INSTRUCTION = "Give only the final answer after 'Answer:'."

_MARKER = re.compile(r"answer\s*[:：]", re.IGNORECASE)
_NUMBER = re.compile(r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?")


def _clean_number(raw: str) -> str:
    return raw.replace(",", "").replace("−", "-")


def extract_answer(text: str, *, numeric: bool) -> str | None:
    """The answer a completion commits to, or ``None`` when it gives none.

    ``numeric``: the expected answer is a number, so return the first number after the last
    ``Answer:`` marker (else the last number anywhere); otherwise return the rest of the
    marker's line (else the last non-empty line), stripped of markup and a final period.
    """
    markers = list(_MARKER.finditer(text))
    tail = text[markers[-1].end() :] if markers else None
    if numeric:
        if tail is not None and (match := _NUMBER.search(tail)):
            return _clean_number(match.group())
        numbers = _NUMBER.findall(text)
        return _clean_number(numbers[-1]) if numbers else None
    if tail is not None:
        line = tail.strip().splitlines()[0] if tail.strip() else ""
    else:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        line = lines[-1] if lines else ""
    line = line.strip().strip("*`$ ").rstrip(".").strip()
    return line or None


def is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text.strip()) is not None


class ReasoningGymDataset(Protocol):
    def score_answer(self, answer: str | None, entry: dict[str, Any]) -> float: ...


def reasoning_gym_reward(
    dataset: ReasoningGymDataset, entry: dict[str, Any], completion: str, *, partial: bool = False
) -> float:
    """Reward from reasoning-gym's own verifier on the parsed answer.

    Binary by default: some reasoning-gym tasks give wrong answers 0.01–0.05 of partial credit
    (``power_function``: 0.01 for any wrong number), which would make every group look
    "effective", so scores below 1 count as 0. ``partial=True`` (``--reward partial``) keeps
    the verifier's score, clipped to [0, 1].
    """
    answer = extract_answer(completion, numeric=is_number(str(entry["answer"])))
    score = float(dataset.score_answer(answer, entry))
    if partial:
        return min(max(score, 0.0), 1.0)
    return 1.0 if score >= 1.0 - 1e-9 else 0.0


def math_reward(gold: str, completion: str) -> float:
    """1.0 when math-verify finds the completion's answer equal to ``gold``, else 0.0.

    Tries the parsed ``Answer:`` text first, then the whole completion (which picks up
    ``\\boxed{}`` and LaTeX answers).
    """
    from math_verify import parse, verify

    gold_parsed = parse(gold if "$" in gold or "\\" in gold else f"${gold}$")
    if not gold_parsed:
        gold_parsed = parse(gold)
    candidates = []
    answer = extract_answer(completion, numeric=is_number(gold))
    if answer is not None:
        candidates.append(answer if "$" in answer else f"${answer}$")
    candidates.append(completion)
    for candidate in candidates:
        predicted = parse(candidate)
        if predicted and verify(gold_parsed, predicted):
            return 1.0
    return 0.0
