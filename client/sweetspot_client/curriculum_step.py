"""One curriculum step's data: what ``PromptCurriculum`` decided before asking the service
(``StepDraw``), what it hands the training loop (``CurriculumBatch``), and its keys: every
idempotency key a curriculum or a trainer integration sends is built here.

Kept apart from ``curriculum.py`` so the sync and async paths there share one drawing and one
finishing step and the module stays short.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sweetspot_client._base_client import ReportVersions
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
    """The step's key (``step_key``); a report of the step is sent under it plus a digest of
    the report's body (``report_key``)."""
    fallback: str | None = None
    candidates: list[int] | None = None
    """Pool indices of every candidate offered to the service this step."""
    features: list[list[float]] | None = None
    """A feature run's vectors of ``items``, as the selection got them (``features=``); the
    report sends these same vectors."""
    policy_version: int | None = None
    """The policy version the selection was for (``next_batch(policy_version=)``): report it
    as the groups' ``selected_version``."""


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
    features: list[list[float]] | None = None
    """One vector per candidate (``PromptCurriculum(features=...)``), in ``indices`` order."""
    policy_version: int | None = None


def step_key(job_id: str, run: str, step: int) -> str:
    """The key of step ``step`` of job ``job_id`` on ``run``: the same on every restart."""
    return f"sweetspot-{job_id}-{run}-{step}"


def report_key(
    step: str,
    prompts: Sequence[str],
    rewards: Sequence[Sequence[float]],
    features: Sequence[Sequence[float]] | None = None,
    versions: Mapping[str, object] | None = None,
) -> str:
    """The idempotency key of a report of step key ``step`` with this body (a feature run's
    ``features`` are part of the body: the service's digest covers them too).

    The same observations sent again (a retry, a restart that resends a queued report, a
    redone step that chose and observed the same) get the same key and are applied once;
    different observations of a redone step (after a resume, the value model may choose
    other prompts, the policy may answer otherwise) get another key and are applied too,
    where a key of the step alone made the service refuse them with 409 (issue 19.12).
    """
    body: dict[str, object] = {
        "prompts": list(prompts),
        "rewards": [[float(x) for x in r] for r in rewards],
    }
    if features is not None:  # a text run's key is what it was before feature runs
        body["features"] = [[float(x) for x in v] for v in features]
    if versions:  # and a report without versions keeps its key too (the service digests both)
        body["versions"] = dict(versions)
    canonical = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return f"{step}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


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


def selected_at(
    batch: CurriculumBatch[Any], versions: ReportVersions | None
) -> ReportVersions | None:
    """``versions`` with its ``selected_version`` the batch's ``policy_version`` when unset."""
    if versions is None or versions.selected_version is not None or batch.policy_version is None:
        return versions
    return dataclasses.replace(versions, selected_version=batch.policy_version)
