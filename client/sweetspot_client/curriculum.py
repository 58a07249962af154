"""``PromptCurriculum``: PCL selection for any training loop in a few lines.

curriculum = PromptCurriculum(client, dataset, m=8, prompt_key="question")
for step in range(steps):
    batch = curriculum.next_batch()          # m records with p̂ closest to tau
    rewards = rollout_and_train(batch.items)  # one list of rewards per record
    curriculum.report(batch, rewards)         # online update of the value model
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sweetspot_client._client import SweetspotClient
from sweetspot_client.sampling import EpochSampler
from sweetspot_client.schema import UpdateResponse
from sweetspot_client.selection import SelectionRule

T = TypeVar("T")


@dataclass(frozen=True)
class CurriculumBatch(Generic[T]):
    """The ``m`` chosen records of one step, with what the value model predicted for them."""

    items: list[T]
    prompts: list[str]
    pool_indices: list[int]
    predicted: list[float]
    model_version: int


class PromptCurriculum(Generic[T]):
    """Draws ``k·m`` candidates per step from ``pool`` and keeps the ``m`` nearest ``tau``.

    Candidates are drawn without replacement from a reshuffled pass over the pool, so every
    prompt is offered before any is offered twice. Records may be plain strings, mappings
    with a ``prompt_key`` field, or anything ``prompt_fn`` turns into the prompt text.
    """

    def __init__(
        self,
        client: SweetspotClient,
        pool: Sequence[T],
        *,
        m: int,
        k: int = 4,
        tau: float = 0.5,
        prompt_key: str = "prompt",
        prompt_fn: Callable[[T], str] | None = None,
        seed: int | None = None,
        rule: SelectionRule = "nearest",
        epsilon: float = 0.2,
    ) -> None:
        if not pool:
            raise ValueError("pool is empty: give PromptCurriculum at least m prompts")
        if m < 1 or k < 1:
            raise ValueError(f"m and k must be >= 1, got m={m}, k={k}")
        if m > len(pool):
            raise ValueError(f"m={m} exceeds the pool's {len(pool)} prompts")
        self.client = client
        self.pool = pool
        self.m, self.k, self.tau = m, k, tau
        self.rule, self.epsilon = rule, epsilon
        self._prompt_fn = prompt_fn or (lambda record: _prompt_of(record, prompt_key))
        self._rng = random.Random(seed)
        self._sampler = EpochSampler(len(pool), rng=self._rng)

    def candidates(self) -> list[int]:
        """Pool indices of the next ``k·m`` candidates (fewer if the pool is smaller)."""
        return self._sampler.draw(min(self.k * self.m, len(self.pool)))

    def next_batch(self) -> CurriculumBatch[T]:
        """Ask the service for the ``m`` candidates closest to ``tau``."""
        indices = self.candidates()
        prompts = [self._prompt_fn(self.pool[i]) for i in indices]
        answer = self.client.select(
            prompts,
            self.m,
            tau=self.tau,
            seed=self._rng.randrange(2**31),
            rule=self.rule,
            epsilon=self.epsilon,
        )
        kept = [indices[j] for j in answer.indices]
        return CurriculumBatch(
            items=[self.pool[i] for i in kept],
            prompts=[prompts[j] for j in answer.indices],
            pool_indices=kept,
            predicted=list(answer.scores),
            model_version=answer.model_version,
        )

    def report(
        self, batch: CurriculumBatch[T], rewards: Sequence[Sequence[float]]
    ) -> UpdateResponse:
        """Send the observed rewards of ``batch`` (one list per chosen record) to the service."""
        if len(rewards) != len(batch.prompts):
            raise ValueError(
                f"got {len(rewards)} reward lists for a batch of {len(batch.prompts)} prompts"
            )
        return self.client.update(batch.prompts, [list(r) for r in rewards])


def _prompt_of(record: object, key: str) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, Mapping):
        value = record.get(key)
        if isinstance(value, str):
            return value
        raise KeyError(f"record has no string field {key!r}; pass prompt_key= or prompt_fn=")
    value = getattr(record, key, None)
    if isinstance(value, str):
        return value
    raise TypeError(
        f"cannot find a prompt in {type(record).__name__}; pass prompt_key= or prompt_fn="
    )
