"""Service settings: environment variables ``SWEETSPOT_*`` or ``sweetspot-serve --flags``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sweetspot_client.schema import MAX_PROMPT_CHARS, MAX_PROMPTS_PER_REQUEST


class Settings(BaseSettings):
    """Everything the service can be told; each field is also a ``--kebab-case`` CLI flag."""

    model_config = SettingsConfigDict(env_prefix="SWEETSPOT_", extra="forbid")

    # Value model
    backbone: str = Field(
        default="smollm2",
        description="Value-model backbone: 'smollm2' or 'minilm' (packaged), a local model "
        "folder, or a hub name. Any causal LM (last-token pooling) or encoder (mean pooling).",
    )
    pooling: Literal["auto", "last", "mean"] = Field(
        default="auto", description="'auto': last non-pad token for causal LMs, mean otherwise."
    )
    train_mode: Literal["head", "full"] = Field(
        default="head",
        description="'head': frozen backbone, cached prompt embeddings, train the head only; "
        "'full': train backbone and head.",
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
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Backbone dtype for scoring: 'auto' takes bfloat16 where the hardware "
        "computes it natively (CUDA with bf16, CPUs with AVX512-BF16/AMX), else float32. "
        "The head, and the backbone in full mode, train in float32.",
    )
    device: str = Field(default="cpu", description="torch device, e.g. 'cpu' or 'cuda'.")
    seed: int = Field(default=0, description="Seed for head initialisation and tie-breaking.")
    cache_dir: Path | None = Field(
        default=None, description="Where converted packaged models are kept."
    )

    # Limits (on top of the wire schema's hard ceilings)
    max_prompts_per_request: int = Field(default=1024, ge=1, le=MAX_PROMPTS_PER_REQUEST)
    max_prompt_chars: int = Field(default=16_384, ge=1, le=MAX_PROMPT_CHARS)
    max_body_bytes: int = Field(default=8 * 2**20, ge=1024, description="Larger bodies get 413.")

    # Server
    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to bind (0: any free).")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
