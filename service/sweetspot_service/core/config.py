"""Service settings: environment variables ``SWEETSPOT_*`` or ``sweetspot-serve --flags``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sweetspot_client.schema import (
    MAX_FEATURE_VALUES_PER_REQUEST,
    MAX_PROMPT_CHARS,
    MAX_PROMPTS_PER_REQUEST,
    MAX_REWARDS_PER_PROMPT,
)
from sweetspot_service.core.security import RunKey


class Settings(BaseSettings):
    """Everything the service can be told; each field is also a ``--kebab-case`` CLI flag."""

    model_config = SettingsConfigDict(env_prefix="SWEETSPOT_", extra="forbid")

    # Value model
    backbone: str = Field(
        default="minilm",
        description="Value-model backbone: 'minilm' or 'smollm2' (packaged), a local model "
        "folder, or a hub name. Any causal LM (last-token pooling) or encoder (mean pooling). "
        "MiniLM is the default: on real problems (bench/value_model/real_problems.py) it ranks "
        "better inside a benchmark than SmolLM2 (Spearman 0.36 vs 0.30) at about a quarter of "
        "the cost.",
    )
    pooling: Literal["auto", "last", "mean"] = Field(
        default="auto", description="'auto': last non-pad token for causal LMs, mean otherwise."
    )
    train_mode: Literal["head", "full"] = Field(
        default="head",
        description="'head': frozen backbone, cached prompt embeddings, train the head only; "
        "'full': train backbone and head.",
    )
    head_fit: Literal["ridge", "sgd"] = Field(
        default="ridge",
        description="Head mode's fit. 'ridge': closed-form weighted ridge over a decayed replay "
        "of every observation so far, refitted after each update, its penalty chosen by the "
        "run's own progressive validation; 'sgd': update_steps AdamW steps on each update's "
        "batch (the fit before the replay).",
    )
    feature_layer: int | None = Field(
        default=None,
        ge=1,
        description="Head mode: the transformer block whose output the head reads (1-based; "
        "blocks after it are not run). Unset: the packaged backbone's measured default "
        "(smollm2 15 of 30, minilm 4 of 6), else the last hidden state.",
    )
    replay_window: int = Field(
        default=4096,
        ge=1,
        le=1_000_000,
        description="Observations (prompt, mean reward) each run keeps for the ridge refit, "
        "and prompts whose own reward history it keeps for the posterior. Memory per run: "
        "about window × hidden size × 4 bytes (bench/speed/replay_cost.py).",
    )
    replay_half_life: float = Field(
        default=256.0,
        ge=0,
        description="Versions (updates) after which an observation counts half in the fit and "
        "in a prompt's history: the policy moves. 0: no decay. With policy versions on the "
        "reports, policy versions (docs/api.md, 'Policy versions').",
    )
    reorder_window: float = Field(
        default=8.0,
        ge=0,
        le=1_000_000,
        description="Policy versions within which reports that carry versions are learned in "
        "version order however late they arrive (ridge fit; at most 64 reports pending). "
        "An older report is learned in arrival order, discounted by its age. 0: arrival order.",
    )
    head_lr: float = Field(default=1e-3, gt=0, description="AdamW learning rate of the head.")
    backbone_lr: float = Field(
        default=1e-5, gt=0, description="AdamW learning rate of the backbone (full mode)."
    )
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    grad_clip: float = Field(default=1.0, gt=0, description="Max global gradient norm.")
    update_steps: int = Field(
        default=1, ge=1, le=64, description="Optimiser steps per /v1/update unless it says."
    )
    max_length: int = Field(
        default=512, ge=8, description="Prompts are truncated to this many tokens when scored."
    )
    batch_size: int = Field(default=32, ge=1, description="Prompts per forward micro-batch.")
    embedding_cache_size: int = Field(
        default=100_000, ge=0, description="Prompt embeddings kept in head mode (LRU)."
    )
    embedding_cache_mb: float = Field(
        default=256.0,
        ge=0,
        description="... and at most this much feature memory (hidden size × 4 bytes each).",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Backbone dtype for scoring: 'auto' takes bfloat16 where the hardware "
        "computes it natively (CUDA with bf16, CPUs with AVX512-BF16/AMX), else float32. "
        "The head, and the backbone in full mode, train in float32.",
    )
    device: str = Field(default="cpu", description="torch device, e.g. 'cpu' or 'cuda'.")
    keep_freed_memory: bool = Field(
        default=True,
        description="Keep freed activation buffers for reuse (glibc mallopt) instead of "
        "unmapping them after every batch: no page faults per forward (bench/speed/allocator.py: "
        "MiniLM 1.27x prompts/s, SmolLM2 1.04x, median of paired rounds); the process keeps "
        "its peak working set mapped.",
    )
    seed: int = Field(default=0, description="Seed for head initialisation and tie-breaking.")
    cache_dir: Path | None = Field(
        default=None, description="Where converted packaged models are kept."
    )

    # Limits (on top of the wire schema's hard ceilings)
    max_prompts_per_request: int = Field(default=1024, ge=1, le=MAX_PROMPTS_PER_REQUEST)
    max_prompt_chars: int = Field(default=16_384, ge=1, le=MAX_PROMPT_CHARS)
    max_body_bytes: int = Field(default=8 * 2**20, ge=1024, description="Larger bodies get 413.")
    max_import_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="Bound on a value-model file sent to PUT /v1/runs/{name}/import. Unset: "
        "256 MiB in head mode (about 13 MB at the default replay window), and in full mode "
        "256 MiB plus 16 bytes per backbone parameter (float32 weights and AdamW's two "
        "moments, with room), so every file this service exports can be imported again.",
    )
    max_concurrent_imports: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Value-model files received at once (each is held in memory whole); "
        "one more gets 429 with Retry-After.",
    )
    max_header_bytes: int = Field(
        default=64 * 2**10,
        ge=1024,
        description="Largest request line + headers; larger get 431 (400 without httptools) "
        "and the connection is closed, before the API key is even checked.",
    )
    body_read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a request body may take to arrive; slower ones get 408 and the "
        "connection is closed. Bodies are read before admission, so a slow sender holds a "
        "connection, never an admission slot.",
    )
    max_update_prompt_steps: int = Field(
        default=8192,
        ge=1,
        description="Bound on prompts × optimiser steps in one update, so one update cannot "
        "hold the model thread (and every score) for long; larger ones get 422.",
    )
    max_rewards_per_prompt: int = Field(
        default=256,
        ge=1,
        le=MAX_REWARDS_PER_PROMPT,
        description="Bound on the rewards one update reports for one prompt (its repeats in "
        "the update counted together): a prompt's rewards weigh its observation, so one "
        "report cannot outweigh a run's whole history; larger get 422.",
    )
    max_feature_values: int = Field(
        default=2**20,
        ge=1,
        le=MAX_FEATURE_VALUES_PER_REQUEST,
        description="Bound on prompts × feature_width in one request to a feature run (the "
        "memory one request's vectors take, and the ridge's work per request); larger get "
        "422. The body is bounded by max_body_bytes too: about 20 bytes per number in JSON.",
    )
    max_queued_scores: int = Field(
        default=64,
        ge=1,
        description="Score/select requests admitted at once; more get 429 with Retry-After.",
    )
    max_queued_updates: int = Field(
        default=64, ge=1, description="Update requests admitted at once; more get 429."
    )
    batch_max_prompts: int = Field(
        default=256,
        ge=1,
        description="Prompts the dynamic batcher puts in one forward call; a request with "
        "more is scored in parts, so other requests interleave.",
    )
    batch_max_chars: int = Field(
        default=256 * 1024,
        ge=1,
        description="Characters of prompt text in one forward call (a bound on prompts x "
        "tokens); a request with more is scored in parts, so other requests interleave.",
    )
    batch_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="How long the batcher waits for more requests before a forward pass. 0: "
        "none; requests that arrive while the model is busy are merged anyway, and a wait "
        "only adds latency for a lone client.",
    )
    max_runs: int = Field(
        default=16,
        ge=1,
        description="Runs (value models) the store may list, counted over all replicas.",
    )
    calibration_window: int = Field(
        default=2048,
        ge=1,
        le=1_000_000,
        description="Reported prompts per run over which calibration (MAE, Brier, Spearman, "
        "bins; GET /v1/runs/{name}/calibration and /metrics) is computed: the last N.",
    )

    # State and durability
    redis_url: str | None = Field(
        default=None,
        description="Redis for shared, durable state (update log, idempotency, prompt stats, "
        "score cache, runs), e.g. redis://localhost:6379/0. Unset: in-process state.",
    )
    redis_prefix: str = Field(default="sweetspot", description="Prefix of every Redis key.")
    redis_timeout_s: float = Field(default=2.0, gt=0, description="Redis socket timeout.")
    checkpoint_dir: Path | None = Field(
        default=None,
        description="Where each run's value model is checkpointed (atomically); on restart "
        "the service loads it and replays the update log after it.",
    )
    checkpoint_every: int = Field(default=100, ge=1, description="Checkpoint after N updates.")
    checkpoint_interval_s: float = Field(
        default=60.0, gt=0, description="... or after this long with unsaved updates."
    )
    idempotency_ttl_s: int = Field(
        default=86_400, ge=60, description="How long an Idempotency-Key is remembered."
    )
    score_cache_ttl_s: int = Field(
        default=600, ge=0, description="Lifetime of cached scores in Redis (0: no cache)."
    )
    update_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="How long /v1/update waits for its update to be applied before answering "
        "503 (the update stays accepted; retry with the same Idempotency-Key).",
    )
    log_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the applier checks the log (and the run list) unprompted: "
        "how far behind another replica's updates this one may score.",
    )
    replica_ttl_s: float = Field(
        default=60.0,
        gt=0,
        description="A replica not heard from for this long no longer holds back trimming "
        "of the update log.",
    )

    # Auth
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer keys allowed everything (JSON list). If any key is set, every "
        "route outside public_paths needs one.",
    )
    read_api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer keys allowed to read only (score, select, list runs).",
    )
    metrics_api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer keys allowed GET /metrics and nothing else (for Prometheus's "
        "scrape 'authorization'). Setting one takes /metrics out of public_paths: its "
        "series name every run. Needs api_keys too.",
    )
    run_keys: list[RunKey] = Field(
        default_factory=list,
        max_length=1024,
        description='Bearer keys bound to runs (JSON list of {"key", "runs", '
        "\"access\"}): each pattern a run name or a prefix ending in '*', access 'write' "
        "(default) or 'read'. Such a key may use only its runs (score, select, update, stats, "
        "calibration, export, import, create, delete), lists only them, forks only from and "
        "to them, and may not read /metrics (its series name every run).",
    )
    public_paths: list[str] = Field(
        default_factory=lambda: ["/healthz", "/readyz", "/metrics"],
        description="Paths that never need a key.",
    )
    shutdown_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="On SIGTERM: half for requests in flight (an update still waiting then "
        "answers 503: accepted, retry with the same key), half to apply what was accepted, "
        "checkpoint and close.",
    )

    # Server
    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to bind (0: any free).")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    parent_pid: int | None = Field(
        default=None,
        ge=1,
        description="Shut down (as on SIGTERM: drain, checkpoint, close) once the process "
        "with this pid is no longer this one's parent: an embedded service outlives no trainer, "
        "even one killed outright (SIGKILL, the OOM killer).",
    )

    @model_validator(mode="after")
    def _metrics_keys_need_api_keys(self) -> Settings:
        if self.metrics_api_keys and not (self.api_keys or self.read_api_keys or self.run_keys):
            raise ValueError(
                "metrics_api_keys only protect /metrics alongside api_keys: set "
                "SWEETSPOT_API_KEYS (or read_api_keys) too, or no key could call the API"
            )
        return self

    @property
    def open_paths(self) -> list[str]:
        """``public_paths``, less /metrics when a metrics key protects it."""
        if self.metrics_api_keys:
            return [path for path in self.public_paths if path != "/metrics"]
        return list(self.public_paths)
