"""``ScoreBatcher`` splits a request larger than one forward call so other requests go
between its parts (issue 19.7), and keeps one model version per request. A fake model
records each call; gates decide when a call finishes, so nothing depends on timing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sweetspot_service.batcher import SPLIT_ATTEMPTS, ScoreBatcher
from sweetspot_service.value_model import Scored


class FakeModel:
    """``run_model`` for the batcher: records the prompts of each call; a call waits for its
    gate when ``gated`` is set; ``version`` is what the call reports."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.version = 1
        self.gated = False
        self.entered = asyncio.Event()
        self.gates: list[asyncio.Event] = []
        self.after_call: Callable[[], None] = lambda: None

    async def __call__(self, fn: Any, prompts: list[str]) -> tuple[list[Scored], int]:
        self.calls.append(list(prompts))
        if self.gated:
            gate = asyncio.Event()
            self.gates.append(gate)
            self.entered.set()
            await gate.wait()
        version = self.version
        self.after_call()
        return [Scored(float(len(p)) / 100, 0.1, 0.5, 0.2) for p in prompts], version


RUN: Any = SimpleNamespace(name="default", model=SimpleNamespace(score=None))


def _batcher(model: FakeModel, **limits: int) -> ScoreBatcher:
    return ScoreBatcher(model, max_wait_s=0.0, **limits)


def test_split_bounds_prompts_and_characters() -> None:
    batcher = _batcher(FakeModel(), max_prompts=3, max_chars=10)
    assert batcher.split(["a"] * 7) == [["a"] * 3, ["a"] * 3, ["a"]]
    assert batcher.split(["abcd", "efgh", "ijkl"]) == [["abcd", "efgh"], ["ijkl"]]
    assert batcher.split(["x" * 25, "y"]) == [["x" * 25], ["y"]]  # too long: on its own
    assert batcher.split([]) == [[]]


def test_a_large_request_is_scored_in_parts_and_a_small_one_goes_between() -> None:
    async def main() -> tuple[FakeModel, list[Scored], list[Scored]]:
        model = FakeModel()
        model.gated = True
        batcher = _batcher(model, max_prompts=4)
        batcher.start()
        large = asyncio.create_task(batcher.predict(RUN, [f"large {i}" for i in range(10)]))
        await model.entered.wait()  # the large request's first part is on the model
        small = asyncio.create_task(batcher.predict(RUN, ["small"]))
        await asyncio.sleep(0)  # the small request is queued behind the first part
        while not (large.done() and small.done()):
            if not model.gates[-1].is_set():
                model.gates[-1].set()  # finish the call on the model, one at a time
            await asyncio.sleep(0)
        got_large, got_small = await large, await small
        await batcher.stop()
        return model, got_large[0], got_small[0]

    model, large, small = asyncio.run(main())
    # parts of at most 4; the small request went between them, not after all ten
    assert [len(call) for call in model.calls] == [4, 1, 4, 2]
    assert model.calls[1] == ["small"]
    assert len(large) == 10 and len(small) == 1
    assert large[0].p == len("large 0") / 100


def test_parts_at_different_versions_are_scored_again() -> None:
    async def main() -> tuple[FakeModel, int, int]:
        model = FakeModel()
        calls = {"n": 0}

        def update_after_the_first_part() -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                model.version = 2

        model.after_call = update_after_the_first_part
        batcher = _batcher(model, max_prompts=2)
        batcher.start()
        _, version = await batcher.predict(RUN, ["a", "b", "c"])
        model.after_call = lambda: setattr(model, "version", model.version + 1)
        _, churned = await batcher.predict(RUN, ["a", "b", "c"])
        await batcher.stop()
        return model, version, churned

    model, version, churned = asyncio.run(main())
    assert version == 2  # first try: parts at 1 and 2; second try: both at 2
    sizes = [len(call) for call in model.calls]
    assert sizes[:4] == [2, 1, 2, 1]
    # updates between every part: SPLIT_ATTEMPTS tries, then one call at one version
    assert sizes[4:] == [2, 1] * SPLIT_ATTEMPTS + [3]
    assert churned == model.version - 1
