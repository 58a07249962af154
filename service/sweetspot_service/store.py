"""Where the service keeps state that outlives one request.

``StateStore`` is the seam: the embedded default keeps everything in this process; a
Redis-backed store (shared across replicas, durable) implements the same protocol.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol


@dataclass
class PromptStats:
    """What has been observed for one prompt across updates."""

    count: int = 0
    reward_sum: float = 0.0
    last_version: int = 0

    @property
    def mean(self) -> float:
        return self.reward_sum / self.count if self.count else float("nan")


class StateStore(Protocol):
    def record_update(
        self, prompts: list[str], rewards: list[list[float]], version: int
    ) -> None: ...

    def prompt_stats(self, prompt: str) -> PromptStats | None: ...

    def __len__(self) -> int: ...


class InMemoryStore:
    """Per-prompt reward statistics in a dict, bounded by ``max_prompts`` (oldest dropped)."""

    def __init__(self, *, max_prompts: int = 1_000_000) -> None:
        self._stats: dict[str, PromptStats] = {}
        self._max = max_prompts
        self._lock = threading.Lock()

    def record_update(self, prompts: list[str], rewards: list[list[float]], version: int) -> None:
        with self._lock:
            for prompt, observed in zip(prompts, rewards, strict=True):
                stats = self._stats.pop(prompt, None) or PromptStats()
                stats.count += len(observed)
                stats.reward_sum += sum(observed)
                stats.last_version = version
                self._stats[prompt] = stats  # re-inserted: dict order is recency
            while len(self._stats) > self._max:
                del self._stats[next(iter(self._stats))]

    def prompt_stats(self, prompt: str) -> PromptStats | None:
        with self._lock:
            return self._stats.get(prompt)

    def __len__(self) -> int:
        return len(self._stats)
