"""The lenient answer parser and the verifiers (reasoning-gym's own, math-verify)."""

from __future__ import annotations

import pytest
import reasoning_gym

from sweetspot_trainer.rewards import extract_answer, math_reward, reasoning_gym_reward
from sweetspot_trainer.tasks import make_task


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: 12", "12"),
        ("3 + 4 = 7\nAnswer: -4.", "-4"),
        ("answer : 1,234 apples", "1234"),
        ("First 3, then Answer: 5, later Answer: 9", "9"),  # the last marker commits
        ("The final answer to the problem is 11.", "11"),  # no marker: last number
        ("7 + 9 = 16", "16"),
        ("Answer: none, but 4 maybe", "4"),
        ("−3 is the result", "-3"),
        ("I don't know", None),
        ("", None),
    ],
)
def test_numeric_extraction(text: str, expected: str | None) -> None:
    assert extract_answer(text, numeric=True) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: olleh.", "olleh"),
        ("thinking...\nAnswer: **dlrow**\nmore text", "dlrow"),
        ("reasoning\n\nfinal line", "final line"),
        ("Answer:", None),
        ("   ", None),
    ],
)
def test_text_extraction(text: str, expected: str | None) -> None:
    assert extract_answer(text, numeric=False) == expected


def test_reasoning_gym_reward_uses_the_datasets_verifier() -> None:
    dataset = reasoning_gym.create_dataset("chain_sum", size=3, seed=0, max_terms=2)
    entry = dataset[0]
    answer = entry["answer"]
    assert reasoning_gym_reward(dataset, entry, f"Working...\nAnswer: {answer}") == 1.0
    assert reasoning_gym_reward(dataset, entry, f"Answer: {int(answer) + 1}") == 0.0
    assert reasoning_gym_reward(dataset, entry, "no idea") == 0.0


def test_partial_credit_counts_as_zero() -> None:
    class Lenient:
        def score_answer(self, answer: str | None, entry: dict[str, object]) -> float:
            return 0.05 if answer is not None else 0.0

    assert reasoning_gym_reward(Lenient(), {"answer": "x"}, "Answer: y") == 0.0


def test_partial_credit_is_kept_when_asked() -> None:
    class Lenient:
        def score_answer(self, answer: str | None, entry: dict[str, object]) -> float:
            return {"y": 0.05, "z": 1.5}.get(answer or "", 0.0)

    assert reasoning_gym_reward(Lenient(), {"answer": "x"}, "Answer: y", partial=True) == 0.05
    assert reasoning_gym_reward(Lenient(), {"answer": "x"}, "Answer: z", partial=True) == 1.0
    assert reasoning_gym_reward(Lenient(), {"answer": "x"}, "nothing", partial=True) == 0.0


def test_power_function_gives_partial_credit_through_the_task() -> None:
    partial = make_task("reasoning_gym:power_function", size=2, partial_credit=True)
    binary = make_task("reasoning_gym:power_function", size=2)
    problem = partial.problems[0]
    completions = [f"Answer: {problem.answer}", "Answer: 12345", ""]  # "": no answer at all
    assert [partial.reward(problem, c) for c in completions] == [1.0, 0.01, 0.0]
    assert [binary.reward(problem, c) for c in completions] == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("gold", "completion", "expected"),
    [
        ("42", "Answer: 42", 1.0),
        ("42", "so the result is \\boxed{42}", 1.0),
        ("1/2", "Answer: 0.5", 1.0),
        ("\\frac{1}{2}", "The answer is $\\frac{2}{4}$", 1.0),
        ("42", "Answer: 41", 0.0),
        ("x^2", "Answer: 2", 0.0),
    ],
)
def test_math_verify_reward(gold: str, completion: str, expected: float) -> None:
    assert math_reward(gold, completion) == expected
