"""``PromptCurriculum``: PCL selection for any training loop in a few lines.

curriculum = PromptCurriculum(client, dataset, m=8, prompt_key="question")
for step in range(steps):
    batch = curriculum.next_batch()          # m records with p̂ closest to tau
    rewards = rollout_and_train(batch.items)  # one list of rewards per record
    curriculum.report(batch, rewards)         # online update of the value model

For a feature run (``client.create_run(name, feature_width=W)``) pass ``features=``, a
function from a list of records to one vector of W numbers each (e.g. your policy's pooled
prefill hidden states): the candidates' vectors go with the selection, and the batch keeps
the chosen ones (``batch.features``) so the report sends exactly those.

Pass ``on_error="uniform"`` and call ``curriculum.report(batch, rewards, background=True)`` to
keep training through a service outage: selection falls back to uniform draws and reports
wait in a queue (``pending_reports()``, ``flush()``, kept by ``state_dict()``) until the
service is back.

With an ``AsyncSweetspotClient`` use ``await curriculum.anext_batch()`` and ``await
curriculum.areport(batch, rewards)``: the same draws, keys and fallback, and the next
selection can be fetched in a task while the current step trains.

A curriculum is resumable: save ``curriculum.state_dict()`` (JSON) with your checkpoint and
call ``load_state_dict`` after a restart; the pass over the pool, the RNG and the step counter
continue where they stopped, and a step reported again after the restart with the same
rewards reuses its idempotency key (job, run, step and a digest of the body), so the service
never applies it twice; a redone step that observed something else is applied too.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar, overload

from sweetspot_client._async_client import AsyncSweetspotClient
from sweetspot_client._base_client import FeatureVectors, ReportVersions, Retries, feature_rows
from sweetspot_client._client import SweetspotClient
from sweetspot_client._exceptions import SweetspotError
from sweetspot_client.curriculum_step import (
    CurriculumBatch,
    StepDraw,
    prompt_of,
    report_key,
    selected_at,
    step_key,
)
from sweetspot_client.reporter import BackgroundReporter, PendingReport
from sweetspot_client.sampling import EpochSampler
from sweetspot_client.schema import UpdateResponse
from sweetspot_client.selection import SelectionRule

T = TypeVar("T")
__all__ = ["CurriculumBatch", "OnError", "PromptCurriculum", "report_key", "step_key"]
OnError = Literal["raise", "uniform"]
SELECT_RETRIES = Retries(max_retries=1, initial=0.2, maximum=1.0)
"""Selection's retries when it can fall back: one quick retry, then uniform draws."""
logger = logging.getLogger("sweetspot_client")


class PromptCurriculum(Generic[T]):
    """Draws ``k·m`` candidates per step from ``pool`` and keeps the ``m`` nearest ``tau``.

    Candidates are drawn without replacement from a reshuffled pass over the pool, so every
    prompt is offered before any is offered twice. Records may be plain strings, mappings
    with a ``prompt_key`` field, or anything ``prompt_fn`` turns into the prompt text.

    ``on_error="uniform"`` keeps training through a service outage: a failed selection keeps
    ``m`` of the candidates uniformly at random (``CurriculumBatch.fallback`` says why), and the
    service is not asked again for ``retry_after_s`` seconds. Selection then has a budget of
    its own, ``select_timeout_s`` per attempt and ``select_retries`` (default 5 s, one retry:
    a hung service costs a step about 11 s, not the client's patient update budget); with
    ``on_error="raise"`` both default to the client's. ``job_id`` names this job in
    idempotency keys (random unless given; saved by ``state_dict``).

    ``report(..., background=True)`` queues the report instead of waiting for it: a
    ``BackgroundReporter`` thread (the TRL and verl integrations' own) sends the queue in
    order, each report under its key, and retries a failed one (backoff ``report_backoff_s``)
    until the service takes it, so the loop trains on through an outage. At most
    ``max_pending_reports`` wait (the oldest is dropped past it, with a warning);
    ``pending_reports()``, ``flush()`` and ``close()`` inspect and end the queue, and
    ``state_dict()`` includes what is still queued.

    ``features`` (for a feature run): called once per step with the ``k·m`` candidate records,
    it returns one vector per record ([k·m, feature_width]: nested numbers, a 2-D array or
    a 2-D tensor); they are sent with the selection, and the chosen records' vectors are kept
    on the batch (``CurriculumBatch.features``) and sent with its report.
    """

    def __init__(
        self,
        client: SweetspotClient | AsyncSweetspotClient,
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
        group_size: int = 8,
        posterior: bool = True,
        on_error: OnError = "raise",
        retry_after_s: float = 30.0,
        select_timeout_s: float | None = None,
        select_retries: Retries | None = None,
        job_id: str | None = None,
        max_pending_reports: int = 64,
        report_backoff_s: tuple[float, float] = (1.0, 30.0),
        features: Callable[[list[T]], FeatureVectors] | None = None,
        lease_s: float | None = None,
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
        self.group_size, self.posterior = group_size, posterior
        self.on_error, self.retry_after_s = on_error, retry_after_s
        falls_back = on_error == "uniform"
        self.select_timeout_s = (
            select_timeout_s if select_timeout_s is not None or not falls_back else 5.0
        )
        self.select_retries = select_retries or (SELECT_RETRIES if falls_back else None)
        self.job_id = job_id or uuid.uuid4().hex[:16]
        self.step = 0
        self._prompt_fn = prompt_fn or (lambda record: prompt_of(record, prompt_key))
        self._features_fn = features
        self.lease_s = lease_s
        """Lease each batch's prompts for this long (several workers on one run: select's
        ``lease_s``); None: no leases."""
        self._rng = random.Random(seed)
        self._sampler = EpochSampler(len(pool), rng=self._rng)
        self._quiet_until = 0.0
        self._reporter_options = (max_pending_reports, report_backoff_s)
        self.reporter: BackgroundReporter | None = None
        """The queue of background reports; made by the first ``report(background=True)``."""

    def prompt(self, index: int) -> str:
        """The prompt text of pool record ``index``."""
        return self._prompt_fn(self.pool[index])

    def candidates(self, m: int | None = None) -> list[int]:
        """Pool indices of the next ``k·m`` candidates (fewer if the pool is smaller)."""
        return self._sampler.draw(min(self.k * (m or self.m), len(self.pool)))

    def next_batch(
        self, m: int | None = None, *, policy_version: int | None = None
    ) -> CurriculumBatch[T]:
        """Ask the service for the ``m`` candidates closest to ``tau`` (``m`` defaults to the
        constructor's). ``policy_version``: the trainer's current policy version, so the
        scores are aimed at the version the batch will be generated at (asynchronous
        trainers; kept as ``CurriculumBatch.policy_version``)."""
        client = self._sync_client("next_batch", "await curriculum.anext_batch()")
        draw = self._draw(m)
        draw.policy_version = policy_version
        if draw.fallback is None:
            try:
                draw.answer = client.select(
                    draw.prompts,
                    draw.m,
                    tau=self.tau,
                    seed=draw.seed,
                    rule=self.rule,
                    epsilon=self.epsilon,
                    group_size=self.group_size,
                    posterior=self.posterior,
                    timeout=self.select_timeout_s,
                    retries=self.select_retries,
                    features=draw.features,
                    policy_version=draw.policy_version,
                    lease_s=self.lease_s,
                )
            except SweetspotError as exc:
                self._failed(draw, exc)
        return self._batch(draw)

    async def anext_batch(
        self, m: int | None = None, *, policy_version: int | None = None
    ) -> CurriculumBatch[T]:
        """``next_batch`` for an ``AsyncSweetspotClient``: the same draws, keys and fallback.

        The candidates, seed and step are taken when the coroutine starts, so
        ``asyncio.create_task(curriculum.anext_batch())`` can fetch the next selection
        while the current step trains.
        """
        client = self._async_client("anext_batch", "curriculum.next_batch()")
        draw = self._draw(m)
        draw.policy_version = policy_version
        if draw.fallback is None:
            try:
                draw.answer = await client.select(
                    draw.prompts,
                    draw.m,
                    tau=self.tau,
                    seed=draw.seed,
                    rule=self.rule,
                    epsilon=self.epsilon,
                    group_size=self.group_size,
                    posterior=self.posterior,
                    timeout=self.select_timeout_s,
                    retries=self.select_retries,
                    features=draw.features,
                    policy_version=draw.policy_version,
                    lease_s=self.lease_s,
                )
            except SweetspotError as exc:
                self._failed(draw, exc)
        return self._batch(draw)

    @overload
    def report(
        self,
        batch: CurriculumBatch[T],
        rewards: Sequence[Sequence[float]],
        *,
        background: Literal[False] = False,
        versions: ReportVersions | None = None,
    ) -> UpdateResponse: ...

    @overload
    def report(
        self,
        batch: CurriculumBatch[T],
        rewards: Sequence[Sequence[float]],
        *,
        background: Literal[True],
        versions: ReportVersions | None = None,
    ) -> None: ...

    @overload
    def report(
        self,
        batch: CurriculumBatch[T],
        rewards: Sequence[Sequence[float]],
        *,
        background: bool,
        versions: ReportVersions | None = None,
    ) -> UpdateResponse | None: ...

    def report(
        self,
        batch: CurriculumBatch[T],
        rewards: Sequence[Sequence[float]],
        *,
        background: bool = False,
        versions: ReportVersions | None = None,
    ) -> UpdateResponse | None:
        """Send the observed rewards of ``batch`` (one list per chosen record) to the service.

        The idempotency key is the batch's step key plus a digest of this body
        (``report_key``), so sending the same step again, after a retry or a restart, is
        applied once, and other rewards for a redone step are applied as well. With
        ``background=True`` the report is queued and sent by a thread that retries it until
        the service takes it (see the class docstring); the call returns ``None`` at once.

        ``versions`` (asynchronous trainers): the policy versions that generated the rewards
        and each group's fate; its ``selected_version``, when unset, is the batch's
        ``policy_version``. The versions are part of the idempotency key, queued reports
        and ``state_dict()``.
        """
        client = self._sync_client("report", "await curriculum.areport(...)")
        versions = selected_at(batch, versions)
        rewards_, key = self._report_args(batch, rewards, versions)
        if background:
            prompts = list(batch.prompts)
            plain = None if versions is None else versions.as_dict()
            report = PendingReport(key, batch.step, prompts, rewards_, batch.features, plain)
            self._background().submit(report)
            return None
        return client.update(
            batch.prompts, rewards_, idempotency_key=key, features=batch.features, versions=versions
        )

    def pending_reports(self) -> int:
        """Background reports not yet acknowledged by the service (queued or in flight)."""
        return 0 if self.reporter is None else self.reporter.pending()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until every background report is acknowledged."""
        return True if self.reporter is None else self.reporter.flush(timeout)

    def close(self, timeout: float = 0.0) -> list[PendingReport]:
        """Flush for up to ``timeout`` s and stop the background thread; returns what was not
        delivered (save it, e.g. with ``state_dict()`` taken before, to send it later)."""
        return [] if self.reporter is None else self.reporter.close(timeout)

    async def areport(
        self,
        batch: CurriculumBatch[T],
        rewards: Sequence[Sequence[float]],
        *,
        versions: ReportVersions | None = None,
    ) -> UpdateResponse:
        """``report`` for an ``AsyncSweetspotClient`` (same body, same idempotency key)."""
        client = self._async_client("areport", "curriculum.report(...)")
        versions = selected_at(batch, versions)
        rewards_, key = self._report_args(batch, rewards, versions)
        return await client.update(
            batch.prompts, rewards_, idempotency_key=key, features=batch.features, versions=versions
        )

    def _draw(self, m: int | None) -> StepDraw:
        """Everything a step decides before asking the service: candidates, seed, step, key,
        and whether to skip the service (it failed less than ``retry_after_s`` ago)."""
        m = self.m if m is None else m
        if not 1 <= m <= len(self.pool):
            raise ValueError(f"m must be between 1 and the pool's {len(self.pool)}, got {m}")
        indices = self.candidates(m)
        prompts = [self.prompt(i) for i in indices]
        seed = self._rng.randrange(2**31)
        step, self.step = self.step, self.step + 1
        draw = StepDraw(
            m, indices, prompts, seed, step, step_key(self.job_id, self.client.run, step)
        )
        if self._features_fn is not None:
            draw.features = self._vectors([self.pool[i] for i in indices])
        if time.monotonic() < self._quiet_until:
            draw.fallback = "the service failed recently; asking again after retry_after_s"
        return draw

    def _vectors(self, records: list[T]) -> list[list[float]]:
        """The ``features`` function's vectors of ``records``, one per record."""
        assert self._features_fn is not None
        vectors = feature_rows(self._features_fn(records))
        if vectors is None or len(vectors) != len(records):
            got = "None" if vectors is None else f"{len(vectors)} vectors"
            raise ValueError(
                f"PromptCurriculum's features function returned {got} for {len(records)} "
                "records; it must return one vector per record, in order"
            )
        return vectors

    def _failed(self, draw: StepDraw, exc: SweetspotError) -> None:
        """Re-raise (``on_error="raise"``), or mark ``draw`` for a uniform draw and stop
        asking the service for ``retry_after_s``."""
        if self.on_error == "raise":
            raise exc
        draw.fallback = f"{type(exc).__name__}: {exc}"
        self._quiet_until = time.monotonic() + self.retry_after_s
        logger.warning(
            "Sweetspot selection failed at step %d, drawing uniformly (next try in %.0f s): %s",
            draw.step,
            self.retry_after_s,
            draw.fallback,
        )

    def _batch(self, draw: StepDraw) -> CurriculumBatch[T]:
        """The batch from the service's answer, or ``m`` uniform candidates on fallback."""
        if draw.answer is None:
            chosen = random.Random(draw.seed).sample(range(len(draw.indices)), draw.m)
            predicted: list[float] = []
            version: int | None = None
        else:
            answer = draw.answer
            chosen, predicted, version = answer.indices, list(answer.scores), answer.model_version
        kept = [draw.indices[j] for j in chosen]
        return CurriculumBatch(
            items=[self.pool[i] for i in kept],
            prompts=[draw.prompts[j] for j in chosen],
            pool_indices=kept,
            predicted=predicted,
            model_version=version,
            step=draw.step,
            idempotency_key=draw.key,
            fallback=draw.fallback,
            candidates=draw.indices,
            features=None if draw.features is None else [draw.features[j] for j in chosen],
            policy_version=draw.policy_version,
        )

    def _report_args(
        self,
        batch: CurriculumBatch[T],
        rewards: Sequence[Sequence[float]],
        versions: ReportVersions | None,
    ) -> tuple[list[list[float]], str]:
        if len(rewards) != len(batch.prompts):
            raise ValueError(
                f"got {len(rewards)} reward lists for a batch of {len(batch.prompts)} prompts"
            )
        rewards_ = [list(r) for r in rewards]
        step = batch.idempotency_key or step_key(self.job_id, self.client.run, batch.step)
        plain = None if versions is None else versions.as_dict()
        return rewards_, report_key(step, batch.prompts, rewards_, batch.features, plain)

    def _background(self) -> BackgroundReporter:
        if self.reporter is None:
            client = self._sync_client("report(..., background=True)", "a SweetspotClient")
            max_pending, backoff_s = self._reporter_options
            self.reporter = BackgroundReporter(client, max_pending=max_pending, backoff_s=backoff_s)
        return self.reporter

    def _sync_client(self, method: str, instead: str) -> SweetspotClient:
        if not isinstance(self.client, SweetspotClient):
            raise TypeError(
                f"PromptCurriculum.{method} needs a SweetspotClient, but this curriculum was "
                f"given an {type(self.client).__name__}: use {instead} in an async loop"
            )
        return self.client

    def _async_client(self, method: str, instead: str) -> AsyncSweetspotClient:
        if not isinstance(self.client, AsyncSweetspotClient):
            raise TypeError(
                f"PromptCurriculum.{method} needs an AsyncSweetspotClient, but this curriculum "
                f"was given a {type(self.client).__name__}: use {instead}, or pass an "
                "AsyncSweetspotClient"
            )
        return self.client

    def state_dict(self) -> dict[str, Any]:
        """Position in the pass, RNG, step counter, job id and the background reports not yet
        acknowledged, as plain JSON-able data."""
        version, internal, gauss = self._rng.getstate()
        pending = [] if self.reporter is None else self.reporter.snapshot()
        return {
            "job_id": self.job_id,
            "step": self.step,
            "rng": [version, list(internal), gauss],
            "sampler": self._sampler.state_dict(),
            "pending_reports": [r.as_dict() for r in pending],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state_dict()``'s output (same pool required); its unacknowledged
        background reports are queued again under their keys."""
        self._sampler.load_state_dict(dict(state["sampler"]))
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        self.step = int(state["step"])
        self.job_id = str(state["job_id"])
        for report in state.get("pending_reports", []):
            self._background().submit(PendingReport.from_dict(report))
