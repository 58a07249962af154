"""``PromptCurriculum``: PCL selection for any training loop in a few lines.

curriculum = PromptCurriculum(client, dataset, m=8, prompt_key="question")
for step in range(steps):
    batch = curriculum.next_batch()          # m records with p̂ closest to tau
    rewards = rollout_and_train(batch.items)  # one list of rewards per record
    curriculum.report(batch, rewards)         # online update of the value model

A curriculum is resumable: save ``curriculum.state_dict()`` (JSON) with your checkpoint and
call ``load_state_dict`` after a restart; the pass over the pool, the RNG and the step counter
continue where they stopped, and a step reported again after the restart reuses its
idempotency key, so the service never applies it twice.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from sweetspot_client._client import SweetspotClient
from sweetspot_client._exceptions import SweetspotError
from sweetspot_client.sampling import EpochSampler
from sweetspot_client.schema import UpdateResponse
from sweetspot_client.selection import SelectionRule

T = TypeVar("T")
OnError = Literal["raise", "uniform"]
logger = logging.getLogger("sweetspot_client")


@dataclass(frozen=True)
class CurriculumBatch(Generic[T]):
    """The ``m`` chosen records of one step, with what the value model predicted for them.

    ``fallback`` holds the reason when the service could not be asked (``on_error="uniform"``)
    and the records were drawn uniformly from the candidates; ``predicted`` is then empty and
    ``model_version`` is ``None``.
    """

    items: list[T]
    prompts: list[str]
    pool_indices: list[int]
    predicted: list[float]
    model_version: int | None
    step: int = 0
    idempotency_key: str = ""
    fallback: str | None = None
    candidates: list[int] | None = None
    """Pool indices of every candidate offered to the service this step."""


def report_key(job_id: str, run: str, step: int) -> str:
    """The idempotency key of step ``step``'s report: the same on every retry and restart."""
    return f"sweetspot-{job_id}-{run}-{step}"


class PromptCurriculum(Generic[T]):
    """Draws ``k·m`` candidates per step from ``pool`` and keeps the ``m`` nearest ``tau``.

    Candidates are drawn without replacement from a reshuffled pass over the pool, so every
    prompt is offered before any is offered twice. Records may be plain strings, mappings
    with a ``prompt_key`` field, or anything ``prompt_fn`` turns into the prompt text.

    ``on_error="uniform"`` keeps training through a service outage: a failed selection keeps
    ``m`` of the candidates uniformly at random (``CurriculumBatch.fallback`` says why), and the
    service is not asked again for ``retry_after_s`` seconds. ``job_id`` names this job in
    idempotency keys (random unless given; saved by ``state_dict``).
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
        on_error: OnError = "raise",
        retry_after_s: float = 30.0,
        job_id: str | None = None,
    ) -> None:
        if not pool:
            raise ValueError("pool is empty: give PromptCurriculum at least m prompts")
        if m < 1 or k < 1:
            raise ValueError(f"m and k must be >= 1, got m={m}, k={k}")
        if m > len(pool):
            raise ValueError(f"m={m} exceeds the pool's {len(pool)} prompts")
        if on_error not in ("raise", "uniform"):
            raise ValueError(f"on_error must be 'raise' or 'uniform', got {on_error!r}")
        self.client = client
        self.pool = pool
        self.m, self.k, self.tau = m, k, tau
        self.rule, self.epsilon = rule, epsilon
        self.on_error, self.retry_after_s = on_error, retry_after_s
        self.job_id = job_id or uuid.uuid4().hex[:16]
        self.step = 0
        self._prompt_fn = prompt_fn or (lambda record: _prompt_of(record, prompt_key))
        self._rng = random.Random(seed)
        self._sampler = EpochSampler(len(pool), rng=self._rng)
        self._quiet_until = 0.0

    def prompt(self, index: int) -> str:
        """The prompt text of pool record ``index``."""
        return self._prompt_fn(self.pool[index])

    def candidates(self, m: int | None = None) -> list[int]:
        """Pool indices of the next ``k·m`` candidates (fewer if the pool is smaller)."""
        return self._sampler.draw(min(self.k * (m or self.m), len(self.pool)))

    def next_batch(self, m: int | None = None) -> CurriculumBatch[T]:
        """Ask the service for the ``m`` candidates closest to ``tau`` (``m`` defaults to the
        constructor's)."""
        m = self.m if m is None else m
        if not 1 <= m <= len(self.pool):
            raise ValueError(f"m must be between 1 and the pool's {len(self.pool)}, got {m}")
        indices = self.candidates(m)
        prompts = [self.prompt(i) for i in indices]
        seed = self._rng.randrange(2**31)
        step, self.step = self.step, self.step + 1
        key = report_key(self.job_id, self.client.run, step)
        fallback: str | None = None
        if time.monotonic() < self._quiet_until:
            fallback = "the service failed recently; asking again after retry_after_s"
        else:
            try:
                answer = self.client.select(
                    prompts, m, tau=self.tau, seed=seed, rule=self.rule, epsilon=self.epsilon
                )
            except SweetspotError as exc:
                if self.on_error == "raise":
                    raise
                fallback = f"{type(exc).__name__}: {exc}"
                self._quiet_until = time.monotonic() + self.retry_after_s
                logger.warning(
                    "Sweetspot selection failed at step %d, drawing uniformly "
                    "(next try in %.0f s): %s",
                    step,
                    self.retry_after_s,
                    fallback,
                )
        if fallback is not None:
            chosen = random.Random(seed).sample(range(len(indices)), m)
            predicted: list[float] = []
            version: int | None = None
        else:
            chosen, predicted, version = answer.indices, list(answer.scores), answer.model_version
        kept = [indices[j] for j in chosen]
        return CurriculumBatch(
            items=[self.pool[i] for i in kept],
            prompts=[prompts[j] for j in chosen],
            pool_indices=kept,
            predicted=predicted,
            model_version=version,
            step=step,
            idempotency_key=key,
            fallback=fallback,
            candidates=indices,
        )

    def report(
        self, batch: CurriculumBatch[T], rewards: Sequence[Sequence[float]]
    ) -> UpdateResponse:
        """Send the observed rewards of ``batch`` (one list per chosen record) to the service.

        The idempotency key is the batch's own (derived from job, run and step), so sending
        the same step again, after a retry or a restart, is applied once.
        """
        if len(rewards) != len(batch.prompts):
            raise ValueError(
                f"got {len(rewards)} reward lists for a batch of {len(batch.prompts)} prompts"
            )
        key = batch.idempotency_key or report_key(self.job_id, self.client.run, batch.step)
        return self.client.update(batch.prompts, [list(r) for r in rewards], idempotency_key=key)

    def state_dict(self) -> dict[str, Any]:
        """Position in the pass, RNG, step counter and job id, as plain JSON-able data."""
        version, internal, gauss = self._rng.getstate()
        return {
            "job_id": self.job_id,
            "step": self.step,
            "rng": [version, list(internal), gauss],
            "sampler": self._sampler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state_dict()``'s output (same pool required)."""
        self._sampler.load_state_dict(dict(state["sampler"]))
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        self.step = int(state["step"])
        self.job_id = str(state["job_id"])


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
