"""The wire schema: every request and response body Sweetspot sends or receives.

This module is the single source of truth; the service imports these models rather than
declaring its own. Hard bounds live here (they protect every deployment); a service may
configure tighter limits on top of them.

Rewards are expected in [0, 1] (1 = solved). Map other ranges before sending, e.g. a
{-1, +1} reward with ``(r + 1) / 2`` or a score in [lo, hi] with ``(r - lo) / (hi - lo)``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

MAX_PROMPTS_PER_REQUEST = 4096
"""Hard ceiling on prompts in one request; services may set a lower one."""
MAX_PROMPT_CHARS = 65_536
"""Hard ceiling on one prompt's length in characters; services may set a lower one."""
MAX_REWARDS_PER_PROMPT = 1024
"""Hard ceiling on observed rewards for one prompt in one update."""
MAX_UPDATE_STEPS = 64
"""Hard ceiling on optimiser steps one update request may ask for."""
MAX_FEATURE_WIDTH = 8192
"""Hard ceiling on a feature run's ``feature_width`` (numbers per prompt vector)."""
MAX_FEATURE_VALUES_PER_REQUEST = 2**24
"""Hard ceiling on prompts × feature width in one request; services set a lower one."""
MAX_POLICY_VERSION = 2**40
"""Hard ceiling on a policy version (a trainer's optimiser-step count, far below it)."""

Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
RUN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
RunName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=RUN_PATTERN,
        description="Training run (policy) this request belongs to; each run has its own "
        "value model. Letters, digits, '_', '.', '-'.",
    ),
]
DEFAULT_RUN = "default"
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# Request numbers and flags are strict: ``true`` or ``"0.5"`` is an error, not a reward of
# 1.0 or 0.5. A JSON integer is still a valid float (a reward of 1 or 0) and becomes a float,
# so ``1`` and ``1.0`` validate, and re-encode for the idempotency digest, identically.
Reward = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
StrictProbability = Annotated[Probability, Strict()]
PolicyVersion = Annotated[
    int,
    Strict(),
    Field(
        ge=0,
        le=MAX_POLICY_VERSION,
        description="A policy version: the trainer's count of optimiser steps (weight "
        "updates) of the policy, 0 before the first.",
    ),
]
GroupFate = Literal["trained", "stale_dropped", "filtered", "failed"]
"""What became of a group of answers: trained on; dropped by the trainer as too stale
(still a sample of p at the version that generated it); filtered out (e.g. no reward
variance); failed (generation or scoring broke: its rewards say nothing about p)."""
FeatureVector = Annotated[
    list[Annotated[float, Strict(), Field(allow_inf_nan=False)]],
    Field(min_length=1, max_length=MAX_FEATURE_WIDTH),
]


def _features_field() -> Any:
    return Field(
        default=None,
        max_length=MAX_PROMPTS_PER_REQUEST,
        description="Feature runs only: one vector per prompt, aligned with prompts (the "
        "trainer's own features, e.g. its policy's pooled prefill hidden states), each of the "
        "run's feature_width finite numbers. The value model reads these instead of the "
        "prompt text; the prompts still identify each prompt (its rewards, statistics, "
        "calibration). Omit for a text run.",
    )


def _check_features(features: list[list[float]] | None, prompts: list[str]) -> None:
    """One vector per prompt, all of one width, within the hard ceiling on values."""
    if features is None:
        return
    if len(features) != len(prompts):
        raise ValueError(
            f"features has {len(features)} vectors but prompts has {len(prompts)} entries; "
            "send one feature vector per prompt, in the same order"
        )
    width = len(features[0])
    for i, vector in enumerate(features):
        if len(vector) != width:
            raise ValueError(
                f"features[{i}] has {len(vector)} numbers but features[0] has {width}; every "
                "vector has the run's feature_width"
            )
    if (values := len(features) * width) > MAX_FEATURE_VALUES_PER_REQUEST:
        raise ValueError(
            f"{len(features)} vectors × {width} numbers = {values} exceeds "
            f"{MAX_FEATURE_VALUES_PER_REQUEST} values per request; send fewer prompts per request"
        )


def _policy_version_field() -> Any:
    return Field(
        default=None,
        description="The policy version these prompts are chosen for (the trainer's current "
        "one). Scores are then aimed at the version they will be generated at: this one plus "
        "the lag the run's reports have shown (target_version). Omit: aimed at the newest "
        "version the run's reports have reached.",
    )


class _Strict(BaseModel):
    """Base for request bodies: unknown fields are an error, not silently dropped.

    Numbers and booleans are typed strictly per field (``Reward``, ``StrictInt``, ...) rather
    than with ``strict=True`` here, which would also refuse a tuple of prompts from Python.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Public(BaseModel):
    """Base for response bodies: tolerate fields added by newer services."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ScoreRequest(_Strict):
    """Prompts to score with the current value model."""

    prompts: list[Prompt] = Field(
        min_length=1,
        max_length=MAX_PROMPTS_PER_REQUEST,
        description="Prompt texts, exactly as the policy sees them (before any chat template).",
    )
    run: RunName = DEFAULT_RUN
    truncate: StrictBool = Field(
        default=False,
        description="Cut prompts longer than the service's limit instead of rejecting them.",
    )
    posterior: StrictBool = Field(
        default=True,
        description="Blend each prompt's p̂ with its own reported rewards (false: the value "
        "model's prediction from the text alone).",
    )
    features: list[FeatureVector] | None = _features_field()
    policy_version: PolicyVersion | None = _policy_version_field()

    @model_validator(mode="after")
    def _features_fit(self) -> ScoreRequest:
        _check_features(self.features, self.prompts)
        return self


class ScoreResponse(_Public):
    scores: list[Probability] = Field(description="Predicted success probability p̂ per prompt.")
    model_version: int = Field(ge=0, description="Value-model version that produced the scores.")
    run: str = DEFAULT_RUN
    uncertainty: list[Annotated[float, Field(ge=0.0, le=0.5)]] | None = Field(
        default=None,
        description="Standard deviation of each score: wide for prompts unlike anything "
        "reported, narrowing with a prompt's own rewards (null from older services).",
    )
    prior: list[Probability] | None = Field(
        default=None,
        description="The value model's p̂ from each prompt's text alone (before its own "
        "rewards are blended in; equal to scores when posterior is false).",
    )
    policy_version: int | None = Field(
        default=None, description="The request's policy_version, echoed (null: none sent)."
    )
    target_version: float | None = Field(
        default=None,
        description="The policy version the scores are aimed at: each prompt's own rewards "
        "are discounted by their age at this version (null from older services).",
    )


MAX_LEASE_S = 86_400.0
"""The longest lease a selection may take (a day)."""


class SelectRequest(_Strict):
    """Candidates from which to keep the ``m`` whose p̂ is closest to ``tau``."""

    prompts: list[Prompt] = Field(min_length=1, max_length=MAX_PROMPTS_PER_REQUEST)
    m: StrictInt = Field(ge=1, description="How many prompts to keep; at most len(prompts).")
    tau: StrictProbability = Field(default=0.5, description="Target success probability.")
    seed: StrictInt | None = Field(default=None, description="Seed for random tie-breaking.")
    rule: Literal["nearest", "band", "weighted", "signal", "random"] = Field(
        default="nearest",
        description="'nearest': the m closest to tau (PCL); 'band': random within "
        "tau ± epsilon, topped up by distance; 'weighted': sampled with weight p̂(1 − p̂); "
        "'signal': the m with the largest expected chance that a group of group_size "
        "answers is mixed, under each score's uncertainty; 'random': m at random, scores "
        "ignored (a placebo for experiments).",
    )
    epsilon: StrictFloat = Field(default=0.2, gt=0, le=0.5, description="Half-width of 'band'.")
    group_size: StrictInt = Field(
        default=8, ge=1, le=MAX_REWARDS_PER_PROMPT, description="Answers per prompt ('signal')."
    )
    run: RunName = DEFAULT_RUN
    truncate: StrictBool = Field(
        default=False,
        description="Cut prompts longer than the service's limit instead of rejecting them.",
    )
    posterior: StrictBool = Field(
        default=True,
        description="Select on p̂ blended with each prompt's own reported rewards (false: "
        "on the text-only prediction).",
    )
    features: list[FeatureVector] | None = _features_field()
    policy_version: PolicyVersion | None = _policy_version_field()
    lease_s: StrictFloat | StrictInt | None = Field(
        default=None,
        gt=0,
        le=MAX_LEASE_S,
        description="Lease the chosen prompts for this many seconds: until a report of a "
        "prompt (any fate) or the lease's end, no other select of the run (on any replica) "
        "chooses it while it has unleased candidates to choose instead. Null: no lease.",
    )

    @model_validator(mode="after")
    def _m_fits(self) -> SelectRequest:
        if self.m > len(self.prompts):
            raise ValueError(
                f"m={self.m} exceeds the {len(self.prompts)} candidate prompts sent; "
                "send at least m candidates or lower m"
            )
        _check_features(self.features, self.prompts)
        return self


class SelectResponse(_Public):
    indices: list[int] = Field(description="Positions in the request's prompts, best first.")
    scores: list[Probability] = Field(description="p̂ of the chosen prompts, aligned with indices.")
    candidate_scores: list[Probability] = Field(description="p̂ of every candidate, in order.")
    model_version: int = Field(ge=0)
    run: str = DEFAULT_RUN
    candidate_uncertainty: list[Annotated[float, Field(ge=0.0, le=0.5)]] | None = Field(
        default=None, description="Standard deviation of each candidate's score, in order."
    )
    policy_version: int | None = Field(
        default=None, description="The request's policy_version, echoed (null: none sent)."
    )
    target_version: float | None = Field(
        default=None, description="The policy version the scores are aimed at (see ScoreResponse)."
    )
    leased: int | None = Field(
        default=None,
        description="With lease_s: how many of indices this request leased; the others were "
        "already leased elsewhere (chosen only because too few candidates were free).",
    )


class GroupVersions(_Strict):
    """Where one group's rewards came from; every field optional. In ``groups`` it overrides
    the report's own fields of the same name for its group."""

    version_start: PolicyVersion | None = Field(
        default=None, description="Policy version whose weights began generating the group."
    )
    version_end: PolicyVersion | None = Field(
        default=None,
        description="Policy version whose weights finished it (≥ version_start; equal when "
        "the weights did not change while it was generated). Either alone stands for both.",
    )
    selected_version: PolicyVersion | None = Field(
        default=None,
        description="The policy_version its prompt was selected for: the gap to the "
        "generation version is the lag the run's scores are aimed across.",
    )
    fate: GroupFate | None = Field(
        default=None,
        description="'trained' (default), 'stale_dropped' and 'filtered' groups are learned "
        "from alike (each is a sample of p at its version); 'failed' ones are logged and "
        "counted but not learned from.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> GroupVersions:
        start, end = self.version_start, self.version_end
        if start is not None and end is not None and end < start:
            raise ValueError(
                f"version_end {end} is before version_start {start}: a group ends being "
                "generated at the same or a later policy version than it starts"
            )
        return self


class UpdateRequest(_Strict):
    """Observed rewards for prompts the policy was trained on: one online step of V."""

    prompts: list[Prompt] = Field(min_length=1, max_length=MAX_PROMPTS_PER_REQUEST)
    rewards: list[
        Annotated[list[Reward], Field(min_length=1, max_length=MAX_REWARDS_PER_PROMPT)]
    ] = Field(
        min_length=1,
        max_length=MAX_PROMPTS_PER_REQUEST,
        description="rewards[i] holds the rewards of prompts[i]'s sampled answers, each in [0, 1].",
    )
    steps: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_UPDATE_STEPS,
        description="Optimiser steps to take on this batch; the service default when omitted.",
    )
    run: RunName = DEFAULT_RUN
    features: list[FeatureVector] | None = _features_field()
    version_start: PolicyVersion | None = Field(
        default=None, description="Every group's version_start (see groups)."
    )
    version_end: PolicyVersion | None = Field(
        default=None, description="Every group's version_end (see groups)."
    )
    selected_version: PolicyVersion | None = Field(
        default=None, description="Every group's selected_version (see groups)."
    )
    fate: GroupFate | None = Field(default=None, description="Every group's fate (see groups).")
    groups: list[GroupVersions | None] | None = Field(
        default=None,
        max_length=MAX_PROMPTS_PER_REQUEST,
        description="Per group (aligned with prompts; null entries take the report's "
        "fields): the policy versions that generated its rewards and its fate. Reports "
        "with versions are learned from by policy version, however late they arrive "
        "(docs/api.md, 'Policy versions'); omit every version field for a synchronous "
        "trainer (each report is then one version newer than the last).",
    )

    @model_validator(mode="after")
    def _aligned(self) -> UpdateRequest:
        if len(self.rewards) != len(self.prompts):
            raise ValueError(
                f"rewards has {len(self.rewards)} lists but prompts has {len(self.prompts)} "
                "entries; send one list of rewards per prompt"
            )
        _check_features(self.features, self.prompts)
        if self.groups is not None and len(self.groups) != len(self.prompts):
            raise ValueError(
                f"groups has {len(self.groups)} entries but prompts has {len(self.prompts)}; "
                "send one entry (or null) per prompt, in the same order"
            )
        GroupVersions.model_validate(self._defaults().model_dump())  # the report's own pair
        resolved = self.resolved_groups()
        if all(g.fate == "failed" for g in resolved):
            raise ValueError(
                "every group of this report is 'failed': nothing in it can be learned from; "
                "leave failed groups out or report them with groups that succeeded"
            )
        if any(g.version_start is not None for g in resolved) and any(
            g.version_start is None for g in resolved
        ):
            raise ValueError(
                "some groups carry policy versions and some do not: give every group a "
                "version (version_start or version_end, per report or in groups) or none"
            )
        return self

    def _defaults(self) -> GroupVersions:
        return GroupVersions.model_construct(
            version_start=self.version_start,
            version_end=self.version_end,
            selected_version=self.selected_version,
            fate=self.fate,
        )

    def resolved_groups(self) -> list[GroupVersions]:
        """Each group's versions and fate: its own entry's fields, else the report's; a lone
        start or end stands for both, and the fate defaults to 'trained'."""
        base = self._defaults().model_dump()
        out = []
        for own in self.groups or [None] * len(self.prompts):
            fields = base | (own.model_dump(exclude_none=True) if own is not None else {})
            start, end = fields["version_start"], fields["version_end"]
            fields["version_start"] = start if start is not None else end
            fields["version_end"] = end if end is not None else start
            fields["fate"] = fields["fate"] or "trained"
            out.append(GroupVersions.model_validate(fields))
        return out

    def targets(self) -> list[float]:
        """The regression target per prompt: the mean observed reward."""
        return [math.fsum(r) / len(r) for r in self.rewards]


class UpdateResponse(_Public):
    model_version: int = Field(ge=0, description="Version after this update.")
    loss: float = Field(description="Mean squared error on this batch after the last step.")
    mse_before: float = Field(description="Mean squared error of p̂ before the update.")
    mae_before: float = Field(
        description="Mean |p̂ − mean reward| over this update's prompts, with p̂ predicted "
        "before the update's step: the online error. A prompt reported before may have been "
        "trained on; GET /v1/runs/{name}/calibration splits first-seen from revisited prompts."
    )
    num_prompts: int = Field(ge=1)
    run: str = DEFAULT_RUN
    policy_version: float | None = Field(
        default=None,
        description="The newest policy version the run's reports have reached after this "
        "one: what its observations are aged against (null from older services).",
    )
    lag: float | None = Field(
        default=None,
        description="The run's running estimate of generation version − selected version, "
        "added to a selection's policy_version to aim its scores (0 until reports say).",
    )


class HealthResponse(_Public):
    status: Literal["ok", "loading", "failed", "draining"]
    ready: bool
    model_version: int | None = Field(default=None, description="The default run's version.")
    backbone: str | None = None
    train_mode: str | None = None
    store: str | None = Field(
        default=None, description="'memory', 'redis', or 'redis-unavailable'."
    )
    detail: str | None = None
    degraded: bool = Field(
        default=False,
        description="Ready, but something needs an operator: see problems. A failed run or "
        "failing checkpoints do not make the service unready (every replica would be pulled, "
        "and the other runs still serve); they show here and in /metrics.",
    )
    problems: list[str] = Field(
        default_factory=list,
        description="What is wrong: failed runs, runs that cannot be checkpointed, the store.",
    )


class StatsRequest(_Strict):
    """Prompts whose observed reward statistics to look up."""

    prompts: list[Prompt] = Field(min_length=1, max_length=MAX_PROMPTS_PER_REQUEST)
    run: RunName = DEFAULT_RUN


class PromptStatsPublic(_Public):
    count: int = Field(ge=0, description="Rewards observed for this prompt (0: never updated).")
    mean_reward: float | None = Field(description="Mean observed reward; null when count is 0.")
    last_version: int | None = Field(description="Model version of the update that last saw it.")
    prior: Probability | None = Field(
        default=None, description="The value model's p̂ from the prompt's text alone."
    )
    posterior: Probability | None = Field(
        default=None,
        description="p̂ blended with the prompt's own (decayed) rewards: what /v1/score returns.",
    )
    uncertainty: float | None = Field(
        default=None, ge=0.0, le=0.5, description="Standard deviation of the posterior."
    )


class StatsResponse(_Public):
    stats: list[PromptStatsPublic]
    run: str = DEFAULT_RUN


class RunCreate(_Strict):
    """``{"name": ..., "from": ..., "feature_width": ...}``: a new run, empty or (with
    ``from``) a warm start; with ``feature_width``, a feature run."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    name: RunName
    from_: RunName | None = Field(
        default=None,
        alias="from",
        description="Start the new run's value model as a copy of this run's current one "
        "(a warm start: the copy starts at version 0; the source is untouched). A fork has "
        "its source's feature_width.",
    )
    feature_width: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_FEATURE_WIDTH,
        description="Make a feature run: its requests carry one vector of this many numbers "
        "per prompt (features), which its value model reads instead of the prompt text. "
        "Omit for a text run (the service's backbone featurises the prompts).",
    )


class RunInfo(_Public):
    name: str
    model_version: int = Field(ge=0, description="Updates applied to this run's value model.")
    checkpointed_version: int = Field(ge=0, description="Version in the last checkpoint.")
    pending_updates: int = Field(ge=0, description="Accepted updates not yet applied.")
    error: str | None = None
    feature_width: int | None = Field(
        default=None,
        description="A feature run's vector width (every score, select and update sends "
        "features of this width); null: a text run.",
    )


class RunList(_Public):
    runs: list[RunInfo]


class CohortError(_Public):
    prompts: int = Field(ge=0, description="Prompts of the window in this cohort.")
    mae: float | None = Field(description="Mean |p̂ − mean reward|; null when prompts is 0.")
    mean_uncertainty: float | None = Field(
        default=None,
        description="Mean predicted standard deviation of p̂ (compare with mae); null when "
        "no prompt of the cohort carried one.",
    )


class CalibrationBin(_Public):
    lower: float = Field(description="Lowest p̂ in the bin (inclusive).")
    upper: float = Field(description="Upper end (exclusive, except 1.0 for the last bin).")
    prompts: int = Field(ge=0)
    mean_predicted: float | None = Field(description="Mean p̂ in the bin; null when empty.")
    mean_observed: float | None = Field(description="Mean observed reward; null when empty.")


class CalibrationResponse(_Public):
    """Progressive validation over the run's last ``window`` reported prompts.

    Each prompt of each applied update counts once, with p̂ as predicted *before* that update
    and its mean reward in that update. ``first_seen`` prompts had no reward reported in this
    run before (the honest generalisation error); ``revisited`` ones had, so the model may
    have trained on them. ``all`` also holds prompts of unknown cohort (updates logged by a
    release that did not record it).
    """

    run: str
    model_version: int = Field(
        ge=0,
        description="The version whose update last entered the window: the numbers cover "
        "exactly updates 1..model_version (never a version whose prompts are not in yet).",
    )
    window: int = Field(ge=1, description="Capacity of the window (calibration_window).")
    all: CohortError
    first_seen: CohortError
    revisited: CohortError
    brier: float | None = Field(
        description="Mean (p̂ − mean reward)²: squared error against each prompt's empirical "
        "success rate (for n binary rewards it includes their sampling variance p(1 − p)/n)."
    )
    spearman: float | None = Field(
        description="Spearman rank correlation of p̂ and mean reward (ties: average ranks); "
        "null with under 2 prompts or when either side is constant."
    )
    bins: list[CalibrationBin] = Field(description="10 equal-width bins of p̂ over [0, 1].")


class ErrorResponse(_Public):
    """Every 4xx/5xx body: ``detail`` says what went wrong and how to fix it."""

    detail: str | list[dict[str, object]]
