"""V(x): predicted probability that the current policy solves prompt x.

A backbone (see ``backbone.py``) pools each prompt into a vector (from a chosen hidden layer
in head mode); a head maps it to p̂ ∈ [0, 1]. A fresh model predicts 0.5 everywhere, so
selection begins uniform. Online updates minimise (V(x) − mean reward)².

In ``head`` mode the backbone is frozen and prompt embeddings are cached by prompt hash,
so a prompt that comes back (scored then updated, or drawn again) costs no forward pass.
The head is fitted one of two ways (``head_fit``):
- ``ridge`` (default): closed-form weighted ridge on a decayed replay window of every
  observation so far, refitted after each update, its penalty chosen by the run's own
  progressive validation (``ridge.py``);
- ``sgd``: LayerNorm + linear + sigmoid, ``steps`` AdamW steps on the update's batch (the
  release before the replay; Spearman 0.29 on unseen prompts where ridge reached 0.60).
In ``full`` mode the backbone trains too (``sgd`` on backbone and head) and nothing is cached.

A *feature run* (``ValueModel.for_features``, see ``features.py``) has no backbone: each
call supplies the prompts' vectors (``features=``, [N, W]), which are LayerNorm'd and fitted
by the same ridge head; everything else is as in head mode.

Every mode blends p̂ with each prompt's own decayed reward history (``history.py``): a prompt
that came back 0 of 8 twice is scored from that, not from its text alone. ``score`` returns
both parts and their uncertainty; ``predict`` the blended p̂.

Two clocks: ``version`` counts the updates applied (the update log's position, the API's
``model_version``); ``policy_version`` is what observations are aged against: the same count
for a synchronous trainer, or with policy versions on the reports the newest version
reported. With versions, the ridge fit learns reports in version order within
``reorder_window`` versions however they arrive (``reorder.py``).

This module knows nothing about HTTP. ``predict`` and ``update`` may be called from many
threads; a lock makes each call see one consistent model version.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from sweetspot_service.backbone import Backbone
from sweetspot_service.features import SuppliedFeatures
from sweetspot_service.history import PromptHistory
from sweetspot_service.reorder import REORDER_WINDOW, Pending, ReorderWindow
from sweetspot_service.ridge import RidgeHead
from sweetspot_service.store import prompt_hash

logger = logging.getLogger(__name__)
TrainMode = Literal["head", "full"]
HeadFit = Literal["ridge", "sgd"]
Features = Tensor | Sequence[Sequence[float]]
"""A feature run's vectors, one per prompt: [N, W] (a tensor or nested numbers)."""


class Scored(NamedTuple):
    """One prompt's score: the posterior (prior blended with the prompt's own rewards) and
    the prior from its text alone, each with its standard deviation."""

    p: float
    sd: float
    prior: float
    prior_sd: float


@dataclass(frozen=True)
class UpdateStats:
    version: int
    loss: float
    mse_before: float
    mae_before: float
    abs_errors_before: list[float]
    predictions_before: list[float]
    """p̂ per prompt before the first step, in request order (progressive validation)."""
    uncertainty_before: list[float]
    """Standard deviation of each p̂ before the update, in request order."""
    policy_version: float = 0.0
    """The clock after the update: the newest policy version reported (or updates counted)."""
    lag: float = 0.0
    """The run's lag estimate after the update (``PromptHistory.lag``)."""
    reordered: bool = False
    """Whether pending reports were learned again to put this one in its place."""


@dataclass
class _Learner:
    """What the ridge fit learns into: the head and the prompt histories (one ``state``)."""

    ridge: RidgeHead
    history: PromptHistory


@dataclass(frozen=True)
class _Batch:
    """One update as the ridge fit learns it (kept while pending in the reorder window)."""

    hashes: list[str]
    features: Tensor  # [B, H] LayerNorm'd
    y: Tensor  # [B] float64 mean rewards
    n: Tensor  # [B] float64 reward counts
    versions: Tensor | None  # [B] float64 generation versions; None: one after the clock
    selected: Tensor | None  # [B] float64 selected versions, NaN where unknown


@dataclass(frozen=True)
class _Learned:
    after: Tensor  # [B] float32 p̂ after the refit
    before: Tensor  # [B] float32 posterior before
    before_sd: Tensor  # [B] float64


class ValueModel:
    def __init__(
        self,
        backbone: Backbone | SuppliedFeatures,
        *,
        train_mode: TrainMode = "head",
        head_fit: HeadFit = "ridge",
        replay_window: int = 4096,
        replay_half_life: float = 256.0,
        head_lr: float = 1e-3,
        backbone_lr: float = 1e-5,
        weight_decay: float = 0.01,
        grad_clip: float = 1.0,
        embedding_cache_size: int = 100_000,
        embedding_cache: EmbeddingCache | None = None,
        seed: int = 0,
        reorder_window: float = REORDER_WINDOW,
    ) -> None:
        if train_mode not in ("head", "full"):
            raise ValueError(f"train_mode must be 'head' or 'full', got {train_mode!r}")
        if head_fit not in ("ridge", "sgd"):
            raise ValueError(f"head_fit must be 'ridge' or 'sgd', got {head_fit!r}")
        torch.manual_seed(seed)
        self.backbone = backbone
        self.train_mode: TrainMode = train_mode
        self.head_fit: HeadFit = head_fit if train_mode == "head" else "sgd"
        self.ridge = (
            RidgeHead(backbone.hidden_size, window=replay_window, half_life=replay_half_life)
            if self.head_fit == "ridge"
            else None
        )
        self.history = PromptHistory(capacity=replay_window, half_life=replay_half_life)
        self._window: ReorderWindow[_Learner, _Batch, _Learned] | None = (
            ReorderWindow(_learn, _copy, window=reorder_window)
            if self.ridge is not None and reorder_window > 0
            else None
        )
        self._norm = nn.LayerNorm(backbone.hidden_size, elementwise_affine=False)
        self.grad_clip = grad_clip
        linear = nn.Linear(backbone.hidden_size, 1)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
        self.head = nn.Sequential(
            nn.LayerNorm(backbone.hidden_size, elementwise_affine=False), linear
        ).to(backbone.device)
        groups: list[dict[str, object]] = [{"params": self.head.parameters(), "lr": head_lr}]
        if train_mode == "full":
            loaded = next(backbone.model.parameters()).dtype
            if loaded != torch.float32:  # train float32 weights, compute in the loaded dtype
                backbone.autocast_dtype = loaded
            backbone.model.float()
            groups.append({"params": backbone.model.parameters(), "lr": backbone_lr})
        else:
            backbone.model.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay)
        self.version = 0
        # Head mode: the backbone is frozen, so its features can be cached, and shared by
        # every value model over the same backbone (one per run).
        self._cache = (
            (
                embedding_cache
                if embedding_cache is not None
                else EmbeddingCache(embedding_cache_size)
            )
            if train_mode == "head"
            else EmbeddingCache(0)
        )
        self._lock = threading.Lock()

    @classmethod
    def for_features(
        cls,
        width: int,
        *,
        replay_window: int = 4096,
        replay_half_life: float = 256.0,
        seed: int = 0,
        reorder_window: float = REORDER_WINDOW,
    ) -> ValueModel:
        """A feature run's model: the ridge head (head mode) over the ``width``-number vectors
        every ``score``/``update`` call supplies; no backbone, no embedding cache."""
        return cls(
            SuppliedFeatures(width),
            train_mode="head",
            head_fit="ridge",
            replay_window=replay_window,
            replay_half_life=replay_half_life,
            embedding_cache=EmbeddingCache(0),
            seed=seed,
            reorder_window=reorder_window,
        )

    @property
    def policy_version(self) -> float:
        """The clock observations are aged against (see the module docstring)."""
        return self.history.version

    @property
    def lag(self) -> float:
        """The run's estimate of generation version − selected version."""
        return self.history.lag

    @property
    def feature_width(self) -> int | None:
        """A feature run's vector width; None for a model that featurises prompt text."""
        source = self.backbone
        return source.hidden_size if isinstance(source, SuppliedFeatures) else None

    def predict(self, prompts: list[str]) -> tuple[list[float], int]:
        """p̂ for each prompt (the posterior: ``Scored.p``) and the version that produced them."""
        scored, version = self.score(prompts)
        return [s.p for s in scored], version

    def score(
        self, prompts: list[str], features: Features | None = None
    ) -> tuple[list[Scored], int]:
        """Posterior and prior with their standard deviations per prompt, and the version.
        ``features``: a feature run's vectors for ``prompts`` ([N, W])."""
        scored, version, _ = self.score_for(prompts, features)
        return scored, version

    def score_for(
        self,
        prompts: list[str],
        features: Features | None = None,
        policy_version: int | None = None,
    ) -> tuple[list[Scored], int, float]:
        """``score`` aimed at the version prompts chosen for ``policy_version`` will be
        generated at (``PromptHistory.target``); also returns that target version."""
        hashes = [prompt_hash(p) for p in prompts]
        with self._lock, torch.inference_mode():
            target = self.history.target(policy_version)
            prior, novelty = self._prior(prompts, features)
            p, sd = self.history.posterior(prior, novelty, hashes, at=target)
            prior_sd = self.history.prior_sd(prior, novelty)
            rows = zip(p.tolist(), sd.tolist(), prior.tolist(), prior_sd.tolist(), strict=True)
            return [Scored(*row) for row in rows], self.version, target

    def update(
        self,
        prompts: list[str],
        targets: list[float],
        steps: int = 1,
        counts: list[int] | None = None,
        features: Features | None = None,
        versions: list[float] | None = None,
        selected: list[float] | None = None,
        order: str = "",
    ) -> UpdateStats:
        """Learn one batch of observations; returns the errors of p̂ before it.

        ``versions[i]``: the policy version that generated ``targets[i]`` (None: the batch is
        one version after the clock, a synchronous trainer's report); ``selected[i]`` the
        version its prompt was selected for (NaN: unknown). ``order`` breaks ties between
        reports of one version in the reorder window (the log entry's body digest).

        ``counts[i]`` is how many rewards ``targets[i]`` averages (default 1): it weighs the
        observation in the ridge fit and the prompt's history. ``steps`` AdamW steps are
        taken with the ``sgd`` fit (ignored by ``ridge``, whose refit is exact). ``loss`` is
        the batch MSE after the update's fit (sgd: before its last step, as training logs
        report it). ``features``: a feature run's vectors for ``prompts`` ([N, W]).
        """
        if len(prompts) != len(targets) or not prompts:
            raise ValueError("update needs one target per prompt and at least one prompt")
        if any(not (0.0 <= t <= 1.0) or math.isnan(t) for t in targets):
            raise ValueError("targets must be probabilities in [0, 1]")
        counts = counts if counts is not None else [1] * len(prompts)
        if len(counts) != len(prompts) or any(c < 1 for c in counts):
            raise ValueError("counts must give a positive reward count per prompt")
        if versions is not None and len(versions) != len(prompts):
            raise ValueError("versions must give one policy version per prompt")
        y = torch.tensor(targets, dtype=torch.float32, device=self.backbone.device)  # [N]
        n = torch.tensor(counts, dtype=torch.float64)  # [N]
        v = None if versions is None else torch.tensor(versions, dtype=torch.float64)  # [N]
        chosen = None if selected is None else torch.tensor(selected, dtype=torch.float64)
        hashes = [prompt_hash(p) for p in prompts]
        reordered = False
        with self._lock:
            if self.ridge is not None:
                with torch.inference_mode():
                    normed = self._normed(prompts, features)
                    batch = _Batch(hashes, normed, y.double().cpu(), n, v, chosen)
                    learned, reordered = self._learn_ordered(batch, order)
                after, before, before_sd = learned.after, learned.before, learned.before_sd
                losses = [float(((after - y.cpu()) ** 2).mean())]
            else:  # the first step's forward pass is the prior: no extra pass
                if self.train_mode == "head":
                    with torch.inference_mode():
                        feats = self._features(prompts, features).clone()  # [N, H]
                    losses, first = self._fit(lambda: self._probabilities(feats), y, steps)
                else:
                    losses, first = self._fit(lambda: self._full_forward(prompts), y, steps)
                prior = first.double().cpu()
                with torch.inference_mode():
                    at = self.history.aimed(v)
                    posterior, before_sd = self.history.posterior(prior, None, hashes, at=at)
                    before = posterior.float()
                    self.history.observe(hashes, y.double().cpu(), n, prior, None, v, chosen)
            self.version += 1
            abs_errors = (before.to(y.device) - y).abs()
            return UpdateStats(
                version=self.version,
                loss=losses[-1],
                mse_before=float((abs_errors**2).mean()),
                mae_before=float(abs_errors.mean()),
                abs_errors_before=abs_errors.tolist(),
                predictions_before=before.tolist(),
                uncertainty_before=before_sd.tolist(),
                policy_version=self.history.version,
                lag=self.history.lag,
                reordered=reordered,
            )

    def _learn_ordered(self, batch: _Batch, order: str) -> tuple[_Learned, bool]:
        """Learn ``batch`` into the ridge fit and histories, through the reorder window when
        it carries versions (or reports with versions are pending); the caller holds the lock."""
        live = _Learner(self.ridge, self.history)  # type: ignore[arg-type]
        window = self._window
        if window is None or (batch.versions is None and not window.pending):
            return _learn(live, batch), False
        if batch.versions is None:  # one version after the clock, fixed now for any rebuild
            implicit = torch.full_like(batch.y, self.history.version + 1)
            batch = _Batch(batch.hashes, batch.features, batch.y, batch.n, implicit, None)
        assert batch.versions is not None
        newest = self.history.version
        key = (float(batch.versions.max()), order)
        live, learned, reordered = window.add(live, newest, key, batch)
        self.ridge, self.history = live.ridge, live.history
        window.settle(self.history.version)
        return learned, reordered

    def _prior(
        self, prompts: list[str], supplied: Features | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The head's p̂ from the prompts' text, [N] float64, and their novelty (ridge only)."""
        if self.ridge is not None:
            features = self._normed(prompts, supplied)
            return self.ridge.predict_shrunk(features)
        return self._probabilities(self._features(prompts, supplied)).double().cpu(), None

    def _normed(self, prompts: list[str], supplied: Features | None = None) -> Tensor:
        """[N] prompts -> [N, H] LayerNorm'd features on the CPU (the ridge's inputs)."""
        normed: Tensor = self._norm(self._features(prompts, supplied).float().cpu())
        return normed

    def _fit(
        self, forward: Callable[[], Tensor], y: Tensor, steps: int
    ) -> tuple[list[float], Tensor]:
        losses: list[float] = []
        before = y
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        for step in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            p_hat: Tensor = forward()  # [N]
            if step == 0:
                before = p_hat.detach()
            loss = torch.mean((p_hat - y) ** 2)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
            self.optimizer.step()
            losses.append(float(loss.detach()))
        return losses, before

    def _probabilities(self, features: Tensor) -> Tensor:
        """[N, H] features -> [N] probabilities."""
        logits: Tensor = self.head(features.to(self.backbone.device)).squeeze(-1)
        return torch.sigmoid(logits)

    def _full_forward(self, prompts: list[str]) -> Tensor:
        """Differentiable p̂ through backbone and head, in the prompts' order: [N]."""
        assert isinstance(self.backbone, Backbone)  # full mode always has one
        parts: list[Tensor] = []
        positions: list[int] = []
        for idx, batch in self.backbone.micro_batches(prompts):
            parts.append(self._probabilities(self.backbone.embed_batch(batch)))
            positions.extend(idx)
        stacked = torch.cat(parts)
        inverse = torch.empty(len(positions), dtype=torch.long)
        inverse[torch.tensor(positions)] = torch.arange(len(positions))
        return stacked[inverse.to(stacked.device)]

    def _features(self, prompts: list[str], supplied: Features | None = None) -> Tensor:
        """[N] prompts -> [N, H] pooled features, from the cache where possible; a feature
        run's are the ``supplied`` vectors, checked against its width."""
        if supplied is None:
            return self._cache.features(prompts, self.backbone.embed)
        if self.feature_width is None:
            raise ValueError("this value model featurises prompt text: send no features")
        features = torch.as_tensor(supplied, dtype=torch.float32)  # [N, W]
        if tuple(features.shape) != (len(prompts), self.feature_width):
            raise ValueError(
                f"expected {len(prompts)} feature vectors of width {self.feature_width}, "
                f"got shape {tuple(features.shape)}"
            )
        return features

    @property
    def cached_embeddings(self) -> int:
        return len(self._cache)

    def state(self) -> dict[str, Any]:
        """Everything needed to resume training: weights, optimiser, replay window, prompt
        histories, version (for checkpoints)."""
        with self._lock:
            state: dict[str, Any] = {
                "version": self.version,
                "train_mode": self.train_mode,
                "head_fit": self.head_fit,
                "hidden_size": self.backbone.hidden_size,
                "feature_layer": self.backbone.layer,
                "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "history": self.history.state(),
                "policy_version": self.history.version,
            }
            if self.ridge is not None:
                state["ridge"] = self.ridge.state()
            if self._window is not None and self._window.settled is not None:
                state["reorder"] = _window_state(self._window)
            if self.feature_width is not None:
                state["feature_width"] = self.feature_width
            if self.train_mode == "full":
                state["backbone"] = self.backbone.model.state_dict()
            return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()``; raises ``ValueError`` if it was made for another model shape.

        A checkpoint of the other head fit (or of a release before the replay, which wrote
        none) keeps its version and starts this fit empty: nothing in it can seed the other
        fit, and the version must stay the log position.
        """
        if state.get("feature_width") != self.feature_width:
            raise ValueError(
                f"checkpoint is of a {_kind(state.get('feature_width'))}, this run a "
                f"{_kind(self.feature_width)}: restore it into a run created alike"
            )
        if state.get("train_mode") != self.train_mode:
            raise ValueError(
                f"checkpoint was written in train_mode={state.get('train_mode')!r}, the service "
                f"runs {self.train_mode!r}: use the same mode or another checkpoint directory"
            )
        if state.get("hidden_size") != self.backbone.hidden_size:
            raise ValueError(
                f"checkpoint has hidden size {state.get('hidden_size')}, the backbone "
                f"{self.backbone.hidden_size}: it was written for another backbone"
            )
        saved_fit = state.get("head_fit", "sgd")
        if saved_fit == self.head_fit and state.get("feature_layer") != self.backbone.layer:
            raise ValueError(
                f"checkpoint's head reads hidden layer {state.get('feature_layer')}, the service "
                f"{self.backbone.layer} (--feature-layer): use the same layer or another "
                "checkpoint directory"
            )
        with self._lock:
            if saved_fit != self.head_fit:
                logger.warning(
                    "checkpoint was written with head_fit=%r, the service runs %r: the head "
                    "starts empty at version %s and learns from the updates after it",
                    saved_fit,
                    self.head_fit,
                    state["version"],
                )
            elif self.ridge is not None:
                self.ridge.load_state(state["ridge"])
            else:
                self.head.load_state_dict(state["head"])
                self.optimizer.load_state_dict(state["optimizer"])
            if self.train_mode == "full":
                self.backbone.model.load_state_dict(state["backbone"])
            if "history" in state:
                self.history.load_state(state["history"])
            self.version = int(state["version"])
            clock = float(state.get("policy_version", self.version))
            if self.ridge is not None:
                self.ridge.version = clock
            self.history.version = max(self.history.version, clock)
            if self._window is not None:
                self._window.settled, self._window.pending = None, []
                if "reorder" in state and self.ridge is not None and saved_fit == self.head_fit:
                    self._load_window(state["reorder"])

    def _load_window(self, saved: dict[str, Any]) -> None:
        """Restore the reorder window's settled state and pending reports (``state()``)."""
        assert self._window is not None and self.ridge is not None
        settled = _copy(_Learner(self.ridge, self.history))
        settled.ridge.load_state(saved["ridge"])
        settled.history.load_state(saved["history"])
        self._window.settled = settled
        self._window.pending = [
            Pending(
                (float(item["key"]), str(item["order"])),
                _Batch(
                    list(item["hashes"]),
                    item["features"],
                    item["y"],
                    item["n"],
                    item["versions"],
                    item.get("selected"),
                ),
            )
            for item in saved["pending"]
        ]


def _fresh(history: PromptHistory, hashes: list[str]) -> Tensor:
    """[N] bool: prompts with no reward in the history yet (first of a batch's repeats)."""
    seen, _ = history.counts(hashes)
    first = {h: i for i, h in reversed(list(enumerate(hashes)))}
    return torch.tensor(
        [bool(seen[i] == 0) and first[h] == i for i, h in enumerate(hashes)], dtype=torch.bool
    )


def _learn(state: _Learner, batch: _Batch) -> _Learned:
    """One update into the ridge fit and the histories: the prior and posterior before it
    (aimed as ``PromptHistory.aimed`` says), then the refit."""
    ridge, history = state.ridge, state.history
    prior, novelty = ridge.predict_shrunk(batch.features)
    ridge.observe(batch.features, batch.y, batch.n, _fresh(history, batch.hashes), batch.versions)
    after = ridge.predict(batch.features).float()
    at = history.aimed(batch.versions)
    before, before_sd = history.posterior(prior, novelty, batch.hashes, at=at)
    history.observe(batch.hashes, batch.y, batch.n, prior, novelty, batch.versions, batch.selected)
    return _Learned(after, before.float(), before_sd)


def _copy(state: _Learner) -> _Learner:
    return _Learner(copy.deepcopy(state.ridge), copy.deepcopy(state.history))


def _window_state(window: ReorderWindow[_Learner, _Batch, _Learned]) -> dict[str, Any]:
    """The settled state and the pending reports, as ``torch.load(weights_only=True)`` reads."""
    assert window.settled is not None
    return {
        "ridge": window.settled.ridge.state(),
        "history": window.settled.history.state(),
        "pending": [
            {
                "key": item.key[0],
                "order": item.key[1],
                "hashes": list(item.batch.hashes),
                "features": item.batch.features.clone(),
                "y": item.batch.y.clone(),
                "n": item.batch.n.clone(),
                "versions": item.batch.versions,
                "selected": item.batch.selected,
            }
            for item in window.pending
        ],
    }


def _kind(feature_width: object) -> str:
    return "text run" if feature_width is None else f"feature run of width {feature_width}"


def forked_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state()`` of one run as the starting point of another (a warm start): the same
    weights, replay window and prompt histories, renumbered so the new run starts at
    version 0. Every stored version moves down by the source's clock (its policy version: to
    0 or below), so the decay between observations, which depends only on their
    differences, is kept. The source's reorder window is left out: the copy starts from its
    live state, every pending report included."""
    shift = float(state.get("policy_version", state["version"]))
    out = {k: v for k, v in state.items() if k != "reorder"}
    out |= {"version": 0, "policy_version": 0.0}
    if "ridge" in state:
        ridge = dict(state["ridge"])
        ridge["version"] = float(ridge["version"]) - shift
        ridge["v"] = ridge["v"].to(torch.float64) - shift
        out["ridge"] = ridge
    if "history" in state:
        history = dict(state["history"])
        history["version"] = float(history["version"]) - shift
        history["items"] = [(h, n, s, float(v) - shift) for h, n, s, v in history["items"]]
        out["history"] = history
    return out


class EmbeddingCache:
    """LRU of pooled prompt features keyed by prompt hash (head mode: the backbone is frozen).

    Bounded twice: at most ``size`` entries and ``max_bytes`` of feature memory (each row is
    stored as its own copy, so evicting it frees it). Only the model thread touches it, so
    it needs no lock of its own.
    """

    def __init__(self, size: int, max_bytes: int | None = None) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, Tensor] = OrderedDict()

    def features(self, prompts: list[str], embed: Callable[[list[str]], Tensor]) -> Tensor:
        if self.size == 0 or self.max_bytes == 0:
            return embed(prompts)
        keys = [prompt_hash(p) for p in prompts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._items}.values())
        fresh = embed([prompts[i] for i in missing]) if missing else None
        rows = {keys[i]: fresh[row] for row, i in enumerate(missing)} if fresh is not None else {}
        out = torch.stack([rows[k] if k in rows else self._items[k] for k in keys])
        for key, row in rows.items():
            self._items[key] = row.clone()  # its own storage, not a view of the batch
            self.bytes += row.numel() * row.element_size()
        for k in keys:
            self._items.move_to_end(k)
        while self._items and (
            len(self._items) > self.size
            or (self.max_bytes is not None and self.bytes > self.max_bytes)
        ):
            _, evicted = self._items.popitem(last=False)
            self.bytes -= evicted.numel() * evicted.element_size()
        return out

    def __len__(self) -> int:
        return len(self._items)
