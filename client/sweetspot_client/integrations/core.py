"""What every trainer integration shares: configuration, reward mapping, selection on one
process with an outage policy, background reports with deterministic keys, and state.

A trainer adapter (``trl.py``; a new one for another trainer) only decides *when* to call
``TrainerCurriculum.select`` and ``report`` and how to move a ``Selection`` to its other
processes; everything the service sees goes through this module.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sweetspot_client._base_client import FeatureVectors, feature_rows
from sweetspot_client._client import Retries, SweetspotClient
from sweetspot_client._exceptions import ConflictError, SweetspotError
from sweetspot_client.curriculum import PromptCurriculum
from sweetspot_client.curriculum_step import report_key
from sweetspot_client.reporter import BackgroundReporter, PendingReport
from sweetspot_client.schema import DEFAULT_RUN
from sweetspot_client.selection import SelectionRule

logger = logging.getLogger("sweetspot_client")
FeaturesFn = Callable[[list[Any]], FeatureVectors]
"""Dataset records -> one vector per record ([len(records), feature_width])."""
STATE_VERSION = 1
HISTORY = 1024


@dataclass(kw_only=True)
class SweetspotConfig:
    """How a trainer integration talks to Sweetspot.

    Rewards must reach the service in [0, 1]. Set at most one of ``reward_range`` (a declared
    ``(low, high)`` mapped linearly onto [0, 1]), ``success_threshold`` (reward >= threshold
    counts 1, else 0) or ``reward_fn`` (any function of one reward); with none, rewards must
    already lie in [0, 1]. The reward of a completion is the trainer's combined reward (in TRL
    the weighted sum over ``reward_funcs``).
    """

    url: str = "http://127.0.0.1:8000"
    """Base URL of ``sweetspot-serve``."""
    api_key: str | None = None
    """Write key, when the service requires one."""
    run: str = DEFAULT_RUN
    """Service run (one value model per run); created on first use unless ``create_run`` is off."""
    create_run: bool = True
    run_from: str | None = None
    """Warm start: create ``run`` as a copy of this run's value model (when it is created)."""
    k: int = 4
    """Candidates per kept prompt: each selection scores ``k·m`` and keeps ``m``."""
    tau: float = 0.5
    """Target success probability."""
    rule: SelectionRule = "nearest"
    epsilon: float = 0.2
    group_size: int = 8
    """Answers per prompt, for ``rule="signal"`` (the trainer's group size)."""
    posterior: bool = True
    """Select on p̂ blended with each prompt's own reported rewards (False: text only)."""
    seed: int | None = None
    """Seed of the candidate draws (default: the trainer's seed)."""
    prompt_fn: Callable[[Any], str] | None = None
    """Dataset record → the text the value model sees (default: ``default_prompt_text``)."""
    reward_range: tuple[float, float] | None = None
    success_threshold: float | None = None
    reward_fn: Callable[[float], float] | None = None
    on_error: Literal["uniform", "raise"] = "uniform"
    """When selection fails: draw uniformly from the candidates (and log it), or raise."""
    select_timeout_s: float = 5.0
    """Timeout of one selection call; with one retry a dead service costs about twice this."""
    retry_after_s: float = 30.0
    """After a failed selection, draw uniformly for this long before asking again."""
    report_timeout_s: float = 60.0
    max_pending_reports: int = 64
    """Reports kept for retry while the service is unreachable; the oldest is dropped past it."""
    flush_timeout_s: float = 10.0
    """How long a checkpoint or the end of training waits for reports to be acknowledged."""
    features: Literal["text", "policy"] | FeaturesFn = "text"
    """What the value model reads: ``"text"`` (the service featurises the prompt text),
    ``"policy"`` (the trainer's own model's pooled prefill hidden states, computed for the
    candidates on the main process; TRL only: ``integrations.policy_features``), or a function
    from a list of dataset records to one vector each. The last two make ``run`` a feature run
    (created with ``feature_width``), so ``run`` must not be ``"default"``."""
    feature_width: int | None = None
    """Width of a features function's vectors (``"policy"``: the model's hidden size)."""
    feature_layer: int | None = None
    """``"policy"``: the ``hidden_states`` index pooled (default: two thirds of the blocks)."""
    feature_batch_size: int = 16
    """``"policy"``: prompts per prefill forward pass."""
    feature_max_tokens: int = 1024
    """``"policy"``: most tokens of a prompt read by the prefill (its last ones)."""

    def __post_init__(self) -> None:
        chosen = [
            name
            for name in ("reward_range", "success_threshold", "reward_fn")
            if getattr(self, name) is not None
        ]
        if len(chosen) > 1:
            raise ValueError(
                f"set at most one of reward_range, success_threshold, reward_fn; got {chosen}"
            )
        if self.reward_range is not None:
            low, high = self.reward_range
            if not high > low:
                raise ValueError(
                    f"reward_range must be (low, high) with high > low, got {self.reward_range}"
                )
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.on_error not in ("uniform", "raise"):
            raise ValueError(f"on_error must be 'uniform' or 'raise', got {self.on_error!r}")
        self._check_features()

    def _check_features(self) -> None:
        features = self.features
        if not callable(features) and features not in ("text", "policy"):
            raise ValueError(
                f"features must be 'text', 'policy' or a function of the records, got {features!r}"
            )
        if features == "text":
            return
        if self.run == DEFAULT_RUN:
            raise ValueError(
                "features other than 'text' need a feature run, and the 'default' run reads "
                "prompt text: set SweetspotConfig(run='my-job', ...)"
            )
        if callable(features) and self.feature_width is None:
            raise ValueError("a features function needs SweetspotConfig(feature_width=W)")
        if self.feature_batch_size < 1 or self.feature_max_tokens < 1:
            raise ValueError("feature_batch_size and feature_max_tokens must be >= 1")

    def map_reward(self, reward: float) -> float:
        """One reward onto [0, 1]; ``ValueError`` naming the options when it falls outside.

        NaN (a completion no reward function scored) stays NaN and is left out of reports.
        """
        if math.isnan(reward):
            return reward
        if self.success_threshold is not None:
            return 1.0 if reward >= self.success_threshold else 0.0
        if self.reward_range is not None:
            low, high = self.reward_range
            mapped = (reward - low) / (high - low)
            where = f"reward_range={self.reward_range}"
        elif self.reward_fn is not None:
            mapped = float(self.reward_fn(reward))
            where = "reward_fn"
        else:
            mapped = reward
            where = "no mapping"
        if not -1e-6 <= mapped <= 1 + 1e-6:
            raise ValueError(
                f"reward {reward!r} maps to {mapped!r} with {where}, outside [0, 1]: Sweetspot "
                "needs success in [0, 1]; set SweetspotConfig(reward_range=(low, high)), "
                "success_threshold=... or reward_fn=..."
            )
        return min(1.0, max(0.0, mapped))


def default_prompt_text(prompt: Any) -> str:
    """The text the value model scores for a TRL/verl-style ``prompt`` field.

    Plain strings are used as they are. For chat messages it is the content of the last
    ``user`` message (the problem statement): a system prompt shared by the whole dataset
    tells prompts apart no better and costs tokens. Pass ``prompt_fn`` to choose otherwise.
    """
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence) and prompt and all(isinstance(m, Mapping) for m in prompt):
        users = [m for m in prompt if m.get("role") == "user"] or list(prompt)
        return _content_text(users[-1].get("content"))
    raise TypeError(
        f"cannot turn a prompt of type {type(prompt).__name__} into text; pass "
        "SweetspotConfig(prompt_fn=...)"
    )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # multimodal parts: keep the text ones
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        return "\n".join(p for p in parts if isinstance(p, str) and p)
    raise TypeError(f"message content of type {type(content).__name__} has no text")


def group_rewards(
    rows: Sequence[int], rewards: Sequence[float]
) -> tuple[list[int], list[list[float]]]:
    """Completion rewards (one per row) → one list per pool index, in first-seen order.

    NaN rewards are left out; an index whose rewards are all NaN is left out entirely.
    """
    if len(rows) != len(rewards):
        raise ValueError(f"{len(rows)} rows but {len(rewards)} rewards")
    groups: dict[int, list[float]] = {}
    for row, reward in zip(rows, rewards, strict=True):
        bucket = groups.setdefault(int(row), [])
        if not math.isnan(reward):
            bucket.append(float(reward))
    kept = [(i, r) for i, r in groups.items() if r]
    return [i for i, _ in kept], [r for _, r in kept]


@dataclass(frozen=True)
class Selection:
    """One draw's outcome, made on the main process and sent as is to the others.

    ``step`` counts the curriculum's draws (it keys the reports); ``trainer_step`` is the
    step as the trainer numbers it, when the integration knows it: logs name that one.
    """

    step: int
    indices: list[int]
    candidates: list[int]
    key: str
    model_version: int | None
    predicted: list[float] = field(repr=False)
    fallback: str | None
    updates_behind: int
    select_seconds: float
    trainer_step: int | None = None
    features: list[list[float]] | None = field(default=None, repr=False)
    """A feature run's vectors of the chosen prompts, aligned with ``indices``."""
    features_seconds: float | None = None
    """Time spent computing the candidates' vectors (part of ``select_seconds``)."""

    @property
    def log_step(self) -> int:
        """The step number logs show: the trainer's where known, else the draw's."""
        return self.step if self.trainer_step is None else self.trainer_step

    def metrics(self) -> dict[str, float]:
        values = {
            "sweetspot/uniform_fallback": float(self.fallback is not None),
            "sweetspot/updates_behind": float(self.updates_behind),
            "sweetspot/select_seconds": self.select_seconds,
        }
        if self.model_version is not None:
            values["sweetspot/model_version"] = float(self.model_version)
        if self.predicted:
            values["sweetspot/predicted_mean"] = sum(self.predicted) / len(self.predicted)
        if self.features_seconds is not None:
            values["sweetspot/features_seconds"] = self.features_seconds
        return values


class TrainerCurriculum:
    """PCL selection and reporting for a trainer that owns its loop, on its main process.

    ``pool`` is the trainer's indexable dataset. Construct it on the main process only: the
    other processes receive each ``Selection`` from it (through the trainer's process group).
    """

    def __init__(
        self,
        config: SweetspotConfig,
        pool: Sequence[Any],
        *,
        seed: int,
        features: FeaturesFn | None = None,
        feature_width: int | None = None,
    ) -> None:
        """``features`` and ``feature_width``: the vectors a trainer adapter computes for
        ``config.features="policy"`` (TRL: from its model); a features function in the config
        is used as it is."""
        self.config = config
        self._features_fn, self.feature_width = _features_source(config, features, feature_width)
        self._features_seconds: float | None = None
        self._select_client = SweetspotClient(
            base_url=config.url,
            api_key=config.api_key,
            run=config.run,
            timeout=config.select_timeout_s,
            retries=Retries(max_retries=1, initial=0.2, maximum=1.0),
        )
        self._report_client = SweetspotClient(
            base_url=config.url,
            api_key=config.api_key,
            run=config.run,
            timeout=config.report_timeout_s,
        )
        prompt_fn = config.prompt_fn or (lambda record: default_prompt_text(_field(record)))
        self.curriculum: PromptCurriculum[Any] = PromptCurriculum(
            self._select_client,
            pool,
            m=1,
            k=config.k,
            tau=config.tau,
            prompt_fn=prompt_fn,
            seed=config.seed if config.seed is not None else seed,
            rule=config.rule,
            epsilon=config.epsilon,
            group_size=config.group_size,
            posterior=config.posterior,
            on_error=config.on_error,
            retry_after_s=config.retry_after_s,
            select_timeout_s=config.select_timeout_s,
            select_retries=self._select_client.retries,
            features=None if self._features_fn is None else self._timed_features,
        )
        self.reporter = BackgroundReporter(
            self._report_client,
            max_pending=config.max_pending_reports,
            on_not_found=self._forget_run,
        )
        self._run_ready = not config.create_run or config.run == DEFAULT_RUN
        self.history: deque[Selection] = deque(maxlen=HISTORY)
        """The most recent selections (for logs and tests), bounded for long runs."""

    def select(self, m: int, trainer_step: int | None = None) -> Selection:
        """Draw ``k·m`` candidates and keep ``m``: the service's choice, or uniform on failure.
        ``trainer_step``: the step these prompts train, as the trainer numbers it (logs)."""
        started = time.perf_counter()
        self._ensure_run()
        behind = self.reporter.pending()
        self._features_seconds = None
        batch = self.curriculum.next_batch(m)
        selection = Selection(
            step=batch.step,
            indices=list(batch.pool_indices),
            candidates=list(batch.candidates or []),
            key=batch.idempotency_key,
            model_version=batch.model_version,
            predicted=list(batch.predicted),
            fallback=batch.fallback,
            updates_behind=behind,
            select_seconds=time.perf_counter() - started,
            trainer_step=trainer_step,
            features=batch.features,
            features_seconds=self._features_seconds,
        )
        self.history.append(selection)
        return selection

    def report(
        self,
        selection: Selection,
        rows: Sequence[int],
        rewards: Sequence[float],
        trainer_step: int | None = None,
    ) -> None:
        """Queue one step's rewards (one per completion, already mapped) for the service.
        ``trainer_step`` names the step in logs (default: the selection's)."""
        step = selection.log_step if trainer_step is None else trainer_step
        indices, grouped = group_rewards(rows, rewards)
        if not indices:
            logger.warning("Sweetspot: step %d had no scored completion to report", step)
            return
        prompts = [self.curriculum.prompt(i) for i in indices]
        features = None
        if selection.features is not None:  # the vectors the selection was made with
            by_index = dict(zip(selection.indices, selection.features, strict=True))
            features = [by_index[i] for i in indices]
        key = report_key(selection.key, prompts, grouped, features)
        self.reporter.submit(PendingReport(key, step, prompts, grouped, features))

    def metrics(self) -> dict[str, float]:
        """Counters and the last acknowledged update's online error, for the trainer's logs."""
        counts = self.reporter.counts
        values = {
            "sweetspot/reports_sent": float(counts.sent),
            "sweetspot/reports_dropped": float(counts.dropped),
            "sweetspot/reports_failed": float(counts.failures),
            "sweetspot/reports_conflicts": float(counts.conflicts),
        }
        if (last := self.reporter.last_response) is not None:
            values["sweetspot/mae_before"] = last.mae_before
            values["sweetspot/applied_version"] = float(last.model_version)
        if (seconds := self.reporter.last_seconds) is not None:
            values["sweetspot/report_seconds"] = seconds
        return values

    def state_dict(self) -> dict[str, Any]:
        """Curriculum position and the reports not yet acknowledged (JSON-able)."""
        return {
            "version": STATE_VERSION,
            "run": self.config.run,
            "curriculum": self.curriculum.state_dict(),
            "pending_reports": [r.as_dict() for r in self.reporter.snapshot()],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a saved state; its unacknowledged reports are sent again (same keys)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown Sweetspot state version {state.get('version')!r}")
        if state["run"] != self.config.run:
            logger.warning(
                "Sweetspot state was saved for run %r, resuming into run %r",
                state["run"],
                self.config.run,
            )
        self.curriculum.load_state_dict(state["curriculum"])
        for r in state["pending_reports"]:
            self.reporter.submit(PendingReport.from_dict(r))

    def flush(self, timeout: float | None = None) -> bool:
        return self.reporter.flush(self.config.flush_timeout_s if timeout is None else timeout)

    def close(self) -> None:
        left = self.reporter.close(self.config.flush_timeout_s)
        if left:
            logger.warning("Sweetspot: %d reports were not delivered before close", len(left))
        self._select_client.close()
        self._report_client.close()

    def _timed_features(self, records: list[Any]) -> FeatureVectors:
        assert self._features_fn is not None
        started = time.perf_counter()
        vectors = feature_rows(self._features_fn(records))
        self._features_seconds = time.perf_counter() - started
        assert vectors is not None
        return vectors

    def _ensure_run(self) -> None:
        if self._run_ready:
            return
        try:
            self._select_client.create_run(
                self.config.run, from_=self.config.run_from, feature_width=self.feature_width
            )
        except ConflictError:
            pass  # it exists already
        except SweetspotError as exc:
            logger.warning("Sweetspot: cannot create run %r yet: %s", self.config.run, exc)
            return
        self._run_ready = True

    def _forget_run(self) -> None:
        self._run_ready = not self.config.create_run or self.config.run == DEFAULT_RUN
        if not self._run_ready:
            self._ensure_run()


def _features_source(
    config: SweetspotConfig, features: FeaturesFn | None, width: int | None
) -> tuple[FeaturesFn | None, int | None]:
    """The features function and width a curriculum uses: the adapter's, the config's, or
    none (a text run)."""
    if features is not None:
        if width is None:
            raise ValueError("TrainerCurriculum(features=...) needs feature_width")
        if config.feature_width is not None and config.feature_width != width:
            raise ValueError(
                f"SweetspotConfig(feature_width={config.feature_width}) but the vectors have "
                f"{width} numbers; drop feature_width or make them agree"
            )
        return features, width
    if callable(config.features):
        return config.features, config.feature_width
    if config.features == "policy":
        raise ValueError(
            "SweetspotConfig(features='policy') is computed by a trainer integration from its "
            "own model (TRL: SweetspotGRPOTrainer); where the policy is out of reach (verl: "
            "it lives in Ray workers) pass features=a function of the records, and feature_width"
        )
    return None, None


def _field(record: Any) -> Any:
    if isinstance(record, Mapping):
        if "prompt" not in record:
            raise KeyError(
                f"dataset record has no 'prompt' field (fields: {sorted(record)}); pass "
                "SweetspotConfig(prompt_fn=...)"
            )
        return record["prompt"]
    return record
