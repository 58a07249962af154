"""Sweetspot for verl's ``RayPPOTrainer`` (verl >= 0.9, < 0.10): PCL prompt selection and
online value-model updates.

Run ``python -m sweetspot_client.integrations.verl_main`` with your Hydra overrides and a
``sweetspot.*`` block instead of ``python -m verl.trainer.main_ppo``; or build the pieces
yourself:

    curriculum = TrainerCurriculum(config, prompt_pool(dataset), seed=0)
    sampler = SweetspotSampler(curriculum, batch_size=train_batch_size)
    trainer = SweetspotRayPPOTrainer(..., train_dataset=tag_rows(dataset), train_sampler=sampler)

How it plugs in (everything runs in verl's driver, the ``TaskRunner`` actor):
- *Selection when verl asks for a batch.* ``SweetspotSampler`` is the ``train_sampler`` that
  verl wraps in its ``StatefulDataLoader``; each batch of ``batch_size`` indices is the
  service's choice among ``k·batch_size`` candidates (uniform draws during an outage). Its
  ``state_dict`` is the curriculum's, so verl's ``data.pt`` checkpoint resumes the same draws.
- *Reports after rewards.* verl 0.9 computes rewards per response in reward-loop actors, so
  no reward manager sees a prompt's group; the driver does. ``SweetspotRayPPOTrainer``
  reads each step's batch before the actor update (``token_level_scores``, i.e. the reward
  manager's score before any KL penalty), groups it by ``uid``, maps it with
  ``SweetspotConfig.map_reward`` and queues one report keyed by (job, run, step, digest of
  its body).
- Rows find their pool index through ``extra_info["sweetspot_index"]`` (``tag_rows``): verl
  keeps ``extra_info`` on the batch through repetition and ``balance_batch`` reordering.
- *Features.* ``SweetspotConfig(features=fn, feature_width=W, run=...)`` makes the run a
  feature run: ``fn`` gets the ``k·batch_size`` candidate rows of ``prompt_pool`` (in the
  driver) and returns one vector each; the report sends the chosen rows' vectors.
  ``features="policy"`` is not offered: the policy lives in the Ray actor workers, sharded,
  and the driver has no copy to prefill with (``verl_main.NO_POLICY_FEATURES``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sweetspot_client.integrations.core import Selection, SweetspotConfig, TrainerCurriculum

try:
    import verl
    from packaging.version import Version
    from torch.utils.data import Dataset, Sampler
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the verl integration needs verl: pip install 'sweetspot-client[verl]'"
    ) from exc

__all__ = [
    "INDEX_KEY",
    "SweetspotConfig",
    "SweetspotRayPPOTrainer",
    "SweetspotSampler",
    "batch_rewards",
    "prompt_pool",
    "tag_rows",
]

logger = logging.getLogger("sweetspot_client")
INDEX_KEY = "sweetspot_index"
SUPPORTED = (Version("0.9"), Version("0.10"))


def check_verl() -> None:
    version = Version(verl.__version__)
    if not SUPPORTED[0] <= version < SUPPORTED[1]:
        raise RuntimeError(
            f"sweetspot's verl integration supports verl>={SUPPORTED[0]},<{SUPPORTED[1]}; "
            f"found {version}: pip install 'sweetspot-client[verl]'"
        )


class _PromptPool(Sequence[Any]):
    def __init__(self, rows: Any) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: Any) -> Any:
        return self._rows[index]


def prompt_pool(dataset: Any) -> Sequence[Any]:
    """What the curriculum draws from: verl's raw rows (``RLHFDataset.dataframe``) when the
    dataset keeps them, so drawing candidates does not build chat messages."""
    rows = getattr(dataset, "dataframe", None)
    return _PromptPool(dataset if rows is None else rows)


class _Tagged(Dataset[dict[str, Any]]):
    """``dataset`` whose rows carry their position in ``extra_info[INDEX_KEY]``."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = dict(self.dataset[index])
        row["extra_info"] = {**(row.get("extra_info") or {}), INDEX_KEY: int(index)}
        return row

    def __getattr__(self, name: str) -> Any:  # verl calls e.g. on_batch_end on its dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def tag_rows(dataset: Any) -> Dataset[dict[str, Any]]:
    """Wrap verl's train dataset so each row's pool index survives into the reward batch."""
    return _Tagged(dataset)


class SweetspotSampler(Sampler[int]):
    """A ``torch`` sampler that yields, per batch of ``batch_size``, the service's selection.

    ``batch_size`` must be the ``StatefulDataLoader``'s (verl: ``data.gen_batch_size`` or
    ``data.train_batch_size``). An epoch is ``len(pool) // batch_size`` batches, as in verl's
    step arithmetic; each batch offers ``k·batch_size`` candidates from a reshuffled pass.
    ``state_dict`` / ``load_state_dict`` (called by ``StatefulDataLoader``) carry the
    curriculum's state and the position in the epoch.
    """

    def __init__(self, curriculum: TrainerCurriculum, *, batch_size: int) -> None:
        pool = len(curriculum.curriculum.pool)
        if not 1 <= batch_size <= pool:
            raise ValueError(
                f"batch_size must be between 1 and the pool's {pool}, got {batch_size}"
            )
        self.curriculum = curriculum
        self.batch_size = batch_size
        self.batches_per_epoch = pool // batch_size
        self._done = 0  # batches of the current epoch already drawn
        self._issued: deque[Selection] = deque(maxlen=64)

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[int]:
        while self._done < self.batches_per_epoch:
            selection = self.curriculum.select(self.batch_size)
            self._done += 1
            self._issued.append(selection)
            yield from selection.indices
        self._done = 0

    def selection_for(self, indices: Sequence[int]) -> Selection:
        """The issued selection whose pool indices are ``indices`` (older ones are dropped)."""
        wanted = set(indices)
        while self._issued:
            selection = self._issued.popleft()
            if set(selection.indices) == wanted:
                return selection
            logger.warning("Sweetspot: selection of step %d was never rewarded", selection.log_step)
        raise LookupError(f"no selection issued for pool indices {sorted(wanted)[:8]}...")

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_batches_done": self._done, "curriculum": self.curriculum.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.curriculum.load_state_dict(state["curriculum"])
        self._done = int(state["epoch_batches_done"])
        self._issued.clear()


def batch_rewards(batch: Any) -> tuple[list[int], list[str], list[float]]:
    """Per response of a verl batch: pool index, ``uid`` and the task reward.

    The reward is the sum over tokens of ``token_level_scores`` (the reward manager's score,
    before any in-reward KL penalty), or of ``rm_scores`` before verl has copied it.
    Shapes: ``token_level_scores`` (responses, response_length) → three lists of responses.
    """
    scores = batch.batch.get("token_level_scores")
    if scores is None:
        scores = batch.batch["rm_scores"]
    extra = batch.non_tensor_batch.get("extra_info")
    if extra is None or any(INDEX_KEY not in (e or {}) for e in extra):
        raise KeyError(
            f"batch rows have no extra_info[{INDEX_KEY!r}]: wrap the train dataset with tag_rows()"
        )
    rows = [int(e[INDEX_KEY]) for e in extra]
    uids = [str(u) for u in batch.non_tensor_batch["uid"]]
    return rows, uids, [float(r) for r in scores.sum(dim=-1).tolist()]


def report_batch(
    curriculum: TrainerCurriculum,
    sampler: SweetspotSampler,
    batch: Any,
    trainer_step: int | None = None,
) -> Selection | None:
    """Map and queue one step's rewards; one report per selection, grouped by ``uid``.
    ``trainer_step``: verl's ``global_steps``, so logs number the step as verl does."""
    rows, uids, rewards = batch_rewards(batch)
    mapped = [curriculum.config.map_reward(r) for r in rewards]
    by_uid: dict[str, int] = {}
    for row, uid in zip(rows, uids, strict=True):
        if by_uid.setdefault(uid, row) != row:
            raise ValueError(f"uid {uid} spans pool rows {by_uid[uid]} and {row}")
    try:
        selection = sampler.selection_for(list(by_uid.values()))
    except LookupError as exc:
        logger.warning("Sweetspot: not reporting this batch: %s", exc)
        return None
    # A selection never holds a prompt twice (one pass, no replacement), so grouping by pool
    # index (TrainerCurriculum.report) is grouping by uid, which the check above confirmed.
    curriculum.report(selection, rows, mapped, trainer_step)
    return selection


class SweetspotRayPPOTrainer(RayPPOTrainer):  # type: ignore[misc]
    """``RayPPOTrainer`` that reports each step's rewards to Sweetspot.

    Give it ``train_sampler=SweetspotSampler(...)`` and ``train_dataset=tag_rows(dataset)``.
    Reports happen before the actor update, so steps of a critic warm-up are not reported;
    the step's ``sweetspot/*`` metrics join the actor's in verl's logger.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_verl()
        sampler = kwargs.get("train_sampler")
        if not isinstance(sampler, SweetspotSampler):
            raise TypeError("SweetspotRayPPOTrainer needs train_sampler=SweetspotSampler(...)")
        super().__init__(*args, **kwargs)
        loader_batch = self.train_dataloader.batch_size
        if loader_batch != sampler.batch_size:
            raise ValueError(
                f"the sampler draws batches of {sampler.batch_size} but verl's dataloader takes "
                f"{loader_batch} (data.gen_batch_size or data.train_batch_size)"
            )
        self.sweetspot_sampler = sampler
        self.sweetspot = sampler.curriculum

    def sweetspot_report(self, batch: DataProto) -> Selection | None:
        step = getattr(self, "global_steps", None)
        return report_batch(self.sweetspot, self.sweetspot_sampler, batch, step)

    def _update_actor(self, batch: DataProto) -> Any:
        started = time.perf_counter()
        selection = self.sweetspot_report(batch)
        report_hook = time.perf_counter() - started
        output = super()._update_actor(batch)
        # verl logs the actor's metrics each step (reduce_metrics keeps plain floats as they
        # are): add Sweetspot's, as the TRL integration does, e.g. sweetspot/uniform_fallback.
        metrics = output.meta_info.setdefault("metrics", {})
        if selection is not None:
            metrics.update(selection.metrics())
        metrics.update(self.sweetspot.metrics())
        metrics["sweetspot/report_hook_seconds"] = report_hook
        return output

    def _save_checkpoint(self) -> Any:
        if not self.sweetspot.flush():  # fewer reports left to carry in data.pt
            logger.warning(
                "Sweetspot: %d reports not yet acknowledged at the checkpoint; they are saved",
                self.sweetspot.reporter.pending(),
            )
        return super()._save_checkpoint()

    def fit(self) -> Any:
        try:
            return super().fit()
        finally:
            self.sweetspot.close()
