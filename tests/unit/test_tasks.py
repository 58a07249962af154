"""Task construction from specs, holdout splits, and errors that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweetspot_trainer.tasks import CHAIN_SUM_MIX, make_task, split_holdout


def test_default_task_mixes_every_difficulty_setting() -> None:
    task = make_task("chain_sum", seed=0, size=10)
    labels = [p.difficulty for p in task.problems]
    assert len(labels) == 10
    assert set(labels) == {label for label, _ in CHAIN_SUM_MIX}
    assert len({p.id for p in task.problems}) == 10
    assert all("Answer:" in p.prompt for p in task.problems)
    first = task.problems[0]
    assert task.reward(first, f"Answer: {first.answer}") == 1.0
    assert task.reward(first, "Answer: 100000") == 0.0


def test_tasks_are_reproducible_from_the_seed() -> None:
    a = [p.prompt for p in make_task("chain_sum", seed=3, size=8).problems]
    b = [p.prompt for p in make_task("chain_sum", seed=3, size=8).problems]
    c = [p.prompt for p in make_task("chain_sum", seed=4, size=8).problems]
    assert a == b and a != c


def test_reasoning_gym_spec_with_options() -> None:
    task = make_task("reasoning_gym:chain_sum?min_terms=3&max_terms=3", size=4)
    assert all(p.entry["metadata"]["num_terms"] == 3 for p in task.problems)
    with pytest.raises(ValueError, match="rejected options"):
        make_task("reasoning_gym:chain_sum?no_such_option=1", size=2)


def test_jsonl_task_scored_with_math_verify(tmp_path: Path) -> None:
    path = tmp_path / "math.jsonl"
    rows = [{"prompt": "What is 1/2 + 1/4?", "answer": "3/4"}, {"prompt": "2+2?", "answer": "4"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    task = make_task(f"jsonl:{path}")
    assert [p.prompt for p in task.problems] == [r["prompt"] for r in rows]
    assert task.reward(task.problems[0], "Answer: 0.75") == 1.0
    assert task.reward(task.problems[1], "Answer: 5") == 0.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "x"}\n', 'need an object with "prompt" and "answer"'),
        ("not json\n", "not JSON"),
        ("\n", "holds no problems"),
    ],
)
def test_bad_jsonl_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        make_task(f"jsonl:{path}")


def test_unknown_spec_lists_the_kinds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reasoning_gym:<name>"):
        make_task("gsm8k")
    with pytest.raises(ValueError, match="does not exist"):
        make_task(f"jsonl:{tmp_path / 'missing.jsonl'}")


def test_holdout_split_is_disjoint_and_seeded() -> None:
    problems = make_task("chain_sum", size=20).problems
    pool, held = split_holdout(problems, 5, seed=1)
    assert len(pool) == 15 and len(held) == 5
    assert {p.id for p in pool}.isdisjoint({p.id for p in held})
    assert split_holdout(problems, 5, seed=1)[1] == held
    with pytest.raises(ValueError, match="leaves no training problems"):
        split_holdout(problems, 20, seed=0)
