"""Fair candidate drawing, shared by ``PromptCurriculum`` and trainers' own strategies."""

from __future__ import annotations

import random
from typing import Any


class EpochSampler:
    """Distinct indices from ``range(size)`` in reshuffled passes over the whole range.

    Every index is offered once per pass before any is offered again; a draw that spans the
    end of a pass never repeats an index (the repeat moves to the end of the new pass).
    """

    def __init__(self, size: int, *, rng: random.Random) -> None:
        if size < 1:
            raise ValueError(f"cannot sample from an empty range (size={size})")
        self.size = size
        self._rng = rng
        self._order: list[int] = []

    def draw(self, count: int) -> list[int]:
        """``count`` distinct indices, 1 <= count <= size."""
        if not 1 <= count <= self.size:
            raise ValueError(f"count must be between 1 and {self.size}, got {count}")
        chosen: list[int] = []
        taken: set[int] = set()
        while len(chosen) < count:
            if not self._order:
                self._order = list(range(self.size))
                self._rng.shuffle(self._order)
            index = self._order.pop()
            if index in taken:
                self._order.insert(0, index)  # already drawn this call: keep it for later
                continue
            chosen.append(index)
            taken.add(index)
        return chosen

    def state_dict(self) -> dict[str, Any]:
        """What is left of the current pass (JSON-serialisable); the RNG is the owner's."""
        return {"size": self.size, "order": list(self._order)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the pass saved by ``state_dict``; the pool must have the same size."""
        if state["size"] != self.size:
            raise ValueError(
                f"saved sampler state is for a pool of {state['size']} prompts, this pool has "
                f"{self.size}: resume with the same dataset"
            )
        order = [int(i) for i in state["order"]]
        if any(not 0 <= i < self.size for i in order):
            raise ValueError("saved sampler state holds indices outside the pool")
        self._order = order
