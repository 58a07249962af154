"""The test tree collects as pytest collects it in CI: ``tests/`` has no packages, so pytest
imports each test file by its basename and two files of the same name in different folders
stop the whole run at collection ("import file mismatch")."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_test_file_basenames_are_unique_across_the_tree() -> None:
    names = Counter(path.name for path in TESTS.rglob("*.py") if path.name != "conftest.py")
    clashes = {name: count for name, count in names.items() if count > 1}
    assert not clashes, f"rename one of each: {clashes}"
