"""``python -m sweetspot_client.integrations.verl_main``: verl's PPO main with Sweetspot.

Takes the same Hydra overrides as ``python -m verl.trainer.main_ppo`` plus a ``sweetspot``
block (every ``SweetspotConfig`` field that is not a function), e.g.

    python -m sweetspot_client.integrations.verl_main data.train_files=... \\
        sweetspot.url=http://sweetspot:8000 sweetspot.run=my-job sweetspot.reward_range=[0,1]

It runs verl's Ray ``RayPPOTrainer`` loop (``trainer.use_v1=false``, the loop that takes a
``train_sampler``) with a ``SweetspotSampler`` and a ``SweetspotRayPPOTrainer``; the rest of
the config means what it means in verl.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from sweetspot_client.integrations.core import (
    SweetspotConfig,
    TrainerCurriculum,
    default_prompt_text,
)
from sweetspot_client.integrations.verl import (
    SweetspotRayPPOTrainer,
    SweetspotSampler,
    check_verl,
    prompt_pool,
    tag_rows,
)

try:
    import hydra
    import ray
    from hydra.core.config_store import ConfigStore
    from omegaconf import DictConfig, OmegaConf
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.main_ppo_v0 import BaseTaskRunner
    from verl.trainer.ppo.utils import create_rl_dataset, need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.dataset.rl_dataset import collate_fn
    from verl.utils.device import auto_set_device
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the verl integration needs verl: pip install 'sweetspot-client[verl]'"
    ) from exc

logger = logging.getLogger("sweetspot_client")
CONFIG_NAME = "sweetspot_ppo_trainer"
VERL_CONFIG = "pkg://verl.trainer.config"
_FUNCTION_FIELDS = {"prompt_fn", "reward_fn"}
_FEATURE_FIELDS = {
    "features",
    "feature_width",
    "feature_layer",
    "feature_batch_size",
    "feature_max_tokens",
}
"""Not in the Hydra block: policy features are not offered in verl (``NO_POLICY_FEATURES``)."""
NO_POLICY_FEATURES = (
    "verl's entry point reads prompt text only: its policy lives in Ray worker processes "
    "(sharded by FSDP), and this driver, which selects the prompts, holds no copy of it, so "
    "features='policy' would need a prefill call into the actor worker group for every "
    "selection, which verl 0.9's workers do not expose. For features of your own, build "
    "the trainer yourself with SweetspotConfig(run=..., features=<function of the pool's "
    "rows>, feature_width=W) (docs/integrations.md, verl)"
)


def config_fields() -> dict[str, Any]:
    """The ``sweetspot`` block's keys and defaults: ``SweetspotConfig``'s plain fields."""
    return {
        f.name: f.default
        for f in dataclasses.fields(SweetspotConfig)
        if f.name not in _FUNCTION_FIELDS | _FEATURE_FIELDS
    }


def register_config() -> None:
    """Store ``sweetspot_ppo_trainer``: verl's ``ppo_trainer`` plus the ``sweetspot`` block."""
    ConfigStore.instance().store(
        name=CONFIG_NAME,
        node={
            "defaults": ["ppo_trainer", "_self_"],
            "trainer": {"use_v1": False},
            "sweetspot": config_fields(),
        },
    )


def sweetspot_config(config: Any) -> SweetspotConfig:
    """``SweetspotConfig`` from the ``sweetspot`` block of a verl config.

    The dataset's ``data.prompt_key`` column is what the value model sees (its last user
    message for chat prompts); the candidate draws are seeded by ``data.seed`` unless
    ``sweetspot.seed`` is set.
    """
    block = OmegaConf.to_container(config.sweetspot, resolve=True)
    assert isinstance(block, Mapping)
    unknown = sorted(set(block) - set(config_fields()))
    if set(unknown) & _FEATURE_FIELDS:
        raise ValueError(NO_POLICY_FEATURES)
    if unknown:
        raise ValueError(f"unknown sweetspot options {unknown}; valid: {sorted(config_fields())}")
    values = {str(k): v for k, v in block.items()}
    if values.get("reward_range") is not None:
        values["reward_range"] = tuple(values["reward_range"])
    key = config.data.get("prompt_key", "prompt")
    return SweetspotConfig(**values, prompt_fn=lambda row: default_prompt_text(row[key]))


def build_trainer(
    config: Any,
    *,
    tokenizer: Any,
    processor: Any,
    role_worker_mapping: Mapping[Any, Any],
    resource_pool_manager: Any,
    ray_worker_group_cls: Any,
) -> SweetspotRayPPOTrainer:
    """What ``verl.trainer.main_ppo_v0.TaskRunner.run`` builds, with Sweetspot's sampler."""
    check_verl()
    settings = sweetspot_config(config)
    train_dataset = create_rl_dataset(
        config.data.train_files,
        config.data,
        tokenizer,
        processor,
        is_train=True,
        max_samples=config.data.get("train_max_samples", -1),
    )
    val_dataset = create_rl_dataset(
        config.data.val_files,
        config.data,
        tokenizer,
        processor,
        is_train=False,
        max_samples=config.data.get("val_max_samples", -1),
    )
    seed = config.data.get("seed")
    curriculum = TrainerCurriculum(settings, prompt_pool(train_dataset), seed=seed or 0)
    batch_size = config.data.get("gen_batch_size") or config.data.train_batch_size
    sampler = SweetspotSampler(curriculum, batch_size=batch_size)
    if config.data.get("dataloader_num_workers", 0):
        logger.warning(
            "Sweetspot: with data.dataloader_num_workers=%s verl's dataloader prefetches, so "
            "selections are made batches ahead and miss the latest updates; set it to 0",
            config.data.dataloader_num_workers,
        )
    return SweetspotRayPPOTrainer(
        config=config,
        tokenizer=tokenizer,
        processor=processor,
        role_worker_mapping=dict(role_worker_mapping),
        resource_pool_manager=resource_pool_manager,
        ray_worker_group_cls=ray_worker_group_cls,
        train_dataset=tag_rows(train_dataset),
        val_dataset=val_dataset,
        collate_fn=collate_fn,
        train_sampler=sampler,
    )


class SweetspotTaskRunner(BaseTaskRunner):  # type: ignore[misc]
    """verl 0.9's ``main_ppo_v0.TaskRunner`` with ``build_trainer`` in place of its own."""

    def run(self, config: Any) -> None:
        from verl.utils.config import omega_conf_to_dataclass

        logger.info("Sweetspot TaskRunner on %s, pid %d", socket.gethostname(), os.getpid())
        OmegaConf.resolve(config)
        actor_rollout_cls, ray_worker_group_cls = self.add_actor_rollout_worker(config)
        self.add_critic_worker(config)
        self.add_reward_model_resource_pool(config)
        self.add_teacher_model_resource_pool(config)
        self.add_ref_policy_worker(config, actor_rollout_cls)
        validate_config(
            config=config,
            use_reference_policy=need_reference_policy(config),
            use_critic=need_critic(config),
        )
        model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
        trainer = build_trainer(
            config,
            tokenizer=model_config.tokenizer,
            processor=model_config.processor,
            role_worker_mapping=self.role_worker_mapping,
            resource_pool_manager=self.init_resource_pool_mgr(config),
            ray_worker_group_cls=ray_worker_group_cls,
        )
        trainer.init_workers()
        trainer.fit()


def prepare(config: Any) -> SweetspotConfig:
    """Checks made before Ray starts, so a wrong config fails in seconds."""
    check_verl()
    if config.trainer.use_v1:
        raise ValueError(
            "trainer.use_v1=true builds its own sampler and cannot take Sweetspot's; the "
            "Sweetspot entry point runs verl's RayPPOTrainer loop (trainer.use_v1=false)"
        )
    auto_set_device(config)
    validate_config(
        config=config,
        use_reference_policy=need_reference_policy(config),
        use_critic=need_critic(config),
    )
    return sweetspot_config(config)


register_config()


@hydra.main(  # type: ignore[untyped-decorator]
    config_path=VERL_CONFIG, config_name=CONFIG_NAME, version_base=None
)
def main(config: DictConfig) -> None:
    """Check the config, then run verl's ``run_ppo`` with ``SweetspotTaskRunner``."""
    prepare(config)
    run_ppo(config, task_runner_class=ray.remote(SweetspotTaskRunner))


if __name__ == "__main__":
    main()
