"""One curriculum step's data: what ``PromptCurriculum`` decided before asking the service
(``StepDraw``), what it hands the training loop (``CurriculumBatch``), and its report key.

Kept apart from ``curriculum.py`` so the sync and async paths there share one drawing and one
finishing step and the module stays short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sweetspot_client.schema import SelectResponse

T = TypeVar("T")


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


@dataclass
class StepDraw:
    """One step between drawing its candidates and building its batch."""

    m: int
    indices: list[int]
    prompts: list[str]
    seed: int
    step: int
    key: str
    fallback: str | None = None
    answer: SelectResponse | None = None


def report_key(job_id: str, run: str, step: int) -> str:
    """The idempotency key of step ``step``'s report: the same on every retry and restart."""
    return f"sweetspot-{job_id}-{run}-{step}"


def prompt_of(record: object, key: str) -> str:
    """The prompt text of a pool record (a string, a mapping or an object with field ``key``);
    the error says which constructor option fixes a record it cannot read."""
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
