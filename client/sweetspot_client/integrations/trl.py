"""Sweetspot for TRL's ``GRPOTrainer``: PCL prompt selection and online value-model updates.

    from sweetspot_client.integrations.trl import SweetspotConfig, SweetspotGRPOTrainer

    trainer = SweetspotGRPOTrainer(
        model=..., reward_funcs=..., args=GRPOConfig(...), train_dataset=dataset,
        sweetspot=SweetspotConfig(url="http://localhost:8000"),
    )
    trainer.train()

How it plugs in (TRL >= 1.16, < 2; checked at construction):
- *Selection at generation time.* TRL's dataloader keeps its own sampler (so epochs, resuming
  and gradient accumulation behave as in TRL), but when ``GRPOTrainer`` is about to generate
  a batch, the main process draws ``k·m`` candidates, asks the service for ``m`` of them and
  broadcasts the choice; every process then replaces its slice of the generation batch with
  the chosen prompts, each repeated ``num_generations`` times, in TRL's layout. Selecting when
  the batch is generated (not when the dataloader prefetches it) means each selection sees
  every update reported before it.
- *Reports after TRL's gather.* ``_calculate_rewards`` returns the rewards of the whole
  generation batch on every process; the combined reward (TRL's weighted sum) is mapped to
  [0, 1] on every process (so a mapping error stops all of them), grouped by prompt, and the
  main process queues one report per generation batch, keyed by (job, run, step, digest of
  the report's body).
- *Checkpoints.* The curriculum state and any unacknowledged reports are written to
  ``sweetspot_state.json`` in each checkpoint folder and read back on
  ``train(resume_from_checkpoint=...)``; a step sent again after a restart with the same
  prompts and rewards reuses its key (applied once); a redone step that chose or observed
  otherwise gets its own key and is applied.
- *Logs.* ``sweetspot/*`` metrics join TRL's own (model version at selection, updates behind,
  uniform fallbacks, the last online error ``mae_before``).
- *Policy features.* With ``SweetspotConfig(features="policy", run=...)`` the run is a feature
  run of the model's hidden size, and each selection sends the candidates' pooled prefill
  hidden states (``integrations.policy_features``), computed on the main process from the
  trainer's own model (unwrapped, eval mode, no grad) on the prompt tokens TRL itself makes
  (its chat template and ``chat_template_kwargs``); their time is logged as
  ``sweetspot/features_seconds``. Sharded weights (FSDP, DeepSpeed ZeRO-3) are refused: one
  process cannot run the model alone there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from sweetspot_client.integrations.core import (
    Selection,
    SweetspotConfig,
    TrainerCurriculum,
    default_prompt_text,
)
from sweetspot_client.integrations.policy_features import hidden_width, prefill_features

try:
    import torch
    import trl
    from accelerate.utils import broadcast_object_list
    from packaging.version import Version
    from trl import GRPOTrainer
    from trl.data_utils import is_conversational
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the TRL integration needs TRL: pip install 'sweetspot-client[trl]'") from exc

__all__ = [
    "STATE_FILE",
    "SweetspotConfig",
    "SweetspotGRPOTrainer",
    "SweetspotMixin",
    "default_prompt_text",
]

logger = logging.getLogger("sweetspot_client")
STATE_FILE = "sweetspot_state.json"
SUPPORTED = (Version("1.16"), Version("2"))
_HOOKS = (
    "_generate_and_score_completions",
    "_calculate_rewards",
    "_save_checkpoint",
    "_load_optimizer_and_scheduler",
    "_metrics",
    "num_generations",
)


def _check_trl(trainer: Any) -> None:
    version = Version(trl.__version__)
    if not SUPPORTED[0] <= version < SUPPORTED[1]:
        raise RuntimeError(
            f"sweetspot's TRL integration supports trl>={SUPPORTED[0]},<{SUPPORTED[1]}; "
            f"found {version}: pip install 'sweetspot-client[trl]'"
        )
    missing = [name for name in _HOOKS if not hasattr(trainer, name)]
    if missing:
        raise RuntimeError(f"this TRL {version} lacks {missing}, which the integration uses")


def _check_unsharded(trainer: Any) -> None:
    """``features="policy"`` runs the whole model on the main process alone."""
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    zero3 = plugin is not None and getattr(plugin, "zero_stage", None) == 3
    if getattr(trainer, "is_fsdp_enabled", False) or zero3:
        raise ValueError(
            "SweetspotConfig(features='policy') runs the policy's prefill on the main process "
            "alone, which sharded weights (FSDP, DeepSpeed ZeRO-3) do not allow: use "
            "features='text', or pass features=a function of the records and feature_width"
        )


class SweetspotMixin:
    """Adds Sweetspot to ``GRPOTrainer`` or a subclass of it: ``class T(SweetspotMixin, X)``.

    Takes one extra keyword, ``sweetspot``: a ``SweetspotConfig`` or a service URL.
    ``trainer.sweetspot`` is the main process's ``TrainerCurriculum`` (``None`` elsewhere).
    """

    def __init__(self, *args: Any, sweetspot: SweetspotConfig | str | None = None, **kwargs: Any):
        self._base().__init__(*args, **kwargs)
        config = SweetspotConfig(url=sweetspot) if isinstance(sweetspot, str) else sweetspot
        config = config or SweetspotConfig()
        trainer: Any = self
        _check_trl(trainer)
        dataset = trainer.train_dataset
        if (
            dataset is None
            or not hasattr(dataset, "__getitem__")
            or not hasattr(dataset, "__len__")
        ):
            raise TypeError(
                "SweetspotGRPOTrainer needs an indexable train_dataset (a datasets.Dataset or "
                "a list), not an IterableDataset: the service chooses among its prompts"
            )
        self.sweetspot_config = config
        self.sweetspot: TrainerCurriculum | None = None
        if trainer.accelerator.is_main_process:
            features, width = None, None
            if config.features == "policy":
                _check_unsharded(trainer)
                features, width = self._policy_features, hidden_width(self._policy())
            self.sweetspot = TrainerCurriculum(
                config, dataset, seed=trainer.args.seed, features=features, feature_width=width
            )
        self._sweetspot_selection: Selection | None = None
        self._sweetspot_rows: list[int] = []

    def _base(self) -> Any:
        """The trainer class after this mixin (``GRPOTrainer`` or the user's subclass)."""
        return super()

    # -- policy features: the candidates' prefill through the trainer's own model -------------
    def _policy(self) -> Any:
        trainer: Any = self
        return trainer.accelerator.unwrap_model(trainer.model)

    def _policy_features(self, records: list[Any]) -> torch.Tensor:
        """[k·m] dataset records -> [k·m, hidden]: pooled prefill hidden states of their
        prompts, tokenised as TRL tokenises them for generation."""
        trainer: Any = self
        config = self.sweetspot_config
        processor = trainer.processing_class
        tokenizer = getattr(processor, "tokenizer", processor)
        prompts = [record["prompt"] for record in records]
        if is_conversational({"prompt": prompts[0]}):
            token_ids = processor.apply_chat_template(
                conversation=prompts,
                chat_template=trainer.chat_template,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **trainer.chat_template_kwargs,
            )["input_ids"]
        else:
            token_ids = processor(text=prompts)["input_ids"]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return prefill_features(
            self._policy(),
            token_ids,
            pad_id=int(pad),
            layer=config.feature_layer,
            batch_size=config.feature_batch_size,
            max_tokens=config.feature_max_tokens,
        )

    # -- selection: when TRL generates a batch ------------------------------------------------
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> Any:
        trainer: Any = self
        if not trainer.model.training:  # evaluation: TRL's own batches
            return self._base()._generate_and_score_completions(inputs)
        started = time.perf_counter()
        accelerator = trainer.accelerator
        group = trainer.num_generations
        local = len(inputs)
        total = local * accelerator.num_processes
        if total % group:
            raise ValueError(
                f"generation batch of {total} is not a multiple of num_generations={group}"
            )
        selection: Selection | BaseException | None = None
        if self.sweetspot is not None:
            try:
                # The optimizer step these completions start (TRL logs steps after they end).
                step = int(trainer.state.global_step) + 1
                selection = self.sweetspot.select(total // group, trainer_step=step)
            except Exception as exc:  # every process must learn of it, or the others hang
                selection = exc
        selection = broadcast_object_list([selection], from_process=0)[0]
        if isinstance(selection, BaseException):
            raise selection
        assert selection is not None
        # Shape: total rows, each chosen prompt repeated num_generations times, in TRL's order;
        # process p trains rows [p·local, (p+1)·local).
        rows = [index for index in selection.indices for _ in range(group)]
        start = accelerator.process_index * local
        mine = rows[start : start + local]
        self._sweetspot_selection, self._sweetspot_rows = selection, rows
        metrics = trainer._metrics["train"]
        for name, value in selection.metrics().items():
            metrics[name].append(value)
        if self.sweetspot is not None:
            for name, value in self.sweetspot.metrics().items():
                metrics[name].append(value)
        dataset = trainer.train_dataset
        chosen = [dict(dataset[i]) for i in mine]
        metrics["sweetspot/hook_seconds"].append(time.perf_counter() - started)
        return self._base()._generate_and_score_completions(chosen)

    # -- reports: after TRL has gathered every process's rewards ------------------------------
    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, ids: Any) -> Any:
        rewards_per_func = self._base()._calculate_rewards(inputs, prompts, completions, ids)
        trainer: Any = self
        selection = self._sweetspot_selection
        if not trainer.model.training or selection is None:
            return rewards_per_func
        self._sweetspot_selection = None  # one report per generation batch
        started = time.perf_counter()
        weights = trainer.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        combined = (rewards_per_func * weights).nansum(dim=1)
        combined[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        values: Sequence[float] = combined.tolist()
        if len(values) != len(self._sweetspot_rows):
            raise RuntimeError(
                f"TRL gathered {len(values)} rewards for {len(self._sweetspot_rows)} selected rows"
            )
        mapped = [self.sweetspot_config.map_reward(v) for v in values]
        if self.sweetspot is not None:
            self.sweetspot.report(selection, self._sweetspot_rows, mapped)
        trainer._metrics["train"]["sweetspot/report_hook_seconds"].append(
            time.perf_counter() - started
        )
        return rewards_per_func

    # -- checkpoints ---------------------------------------------------------------------------
    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        self._base()._save_checkpoint(model, trial)
        if self.sweetspot is None:
            return
        trainer: Any = self
        self.sweetspot.flush()
        folder = os.path.join(
            trainer._get_output_dir(trial=trial), f"checkpoint-{trainer.state.global_step}"
        )
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, STATE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(self.sweetspot.state_dict(), f)
        os.replace(path + ".tmp", path)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        self._base()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.sweetspot is None:
            return
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.exists(path):
            logger.warning(
                "no %s in %s: the Sweetspot curriculum starts afresh", STATE_FILE, checkpoint
            )
            return
        with open(path) as f:
            self.sweetspot.load_state_dict(json.load(f))

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._base().train(*args, **kwargs)
        finally:
            if self.sweetspot is not None and not self.sweetspot.flush():
                logger.warning(
                    "Sweetspot: %d reports still waiting after training",
                    self.sweetspot.reporter.pending(),
                )


class SweetspotGRPOTrainer(SweetspotMixin, GRPOTrainer):  # type: ignore[misc]
    """``GRPOTrainer`` whose prompts are chosen by Sweetspot; takes ``sweetspot=``."""
