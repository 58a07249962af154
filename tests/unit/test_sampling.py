"""EpochSampler: every index once per pass, never twice in one draw."""

from __future__ import annotations

import random

import pytest

from sweetspot_client import EpochSampler


@pytest.mark.parametrize(("size", "count"), [(10, 3), (12, 4), (7, 7), (5, 1)])
def test_each_pass_offers_every_index_once(size: int, count: int) -> None:
    sampler = EpochSampler(size, rng=random.Random(0))
    draws = [sampler.draw(count) for _ in range(size * 3)]
    assert all(len(set(d)) == count for d in draws)
    flat = [i for d in draws for i in d]
    for start in range(0, len(flat) - size + 1, size):
        # within any aligned window of one pass, nothing repeats more than the boundary allows
        assert len(set(flat[start : start + size])) >= size - count + 1
    assert sorted(set(flat)) == list(range(size))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty range"):
        EpochSampler(0, rng=random.Random())
    sampler = EpochSampler(3, rng=random.Random())
    with pytest.raises(ValueError, match="between 1 and 3"):
        sampler.draw(4)
