"""V(x): predicted probability that the current policy solves prompt x.

A backbone (see ``backbone.py``) pools each prompt into a vector; a scalar head with a
sigmoid maps it to p̂ ∈ [0, 1]. The head starts at zero, so a fresh model predicts 0.5
everywhere and selection begins uniform. Online updates minimise (V(x) − mean reward)².

In ``head`` mode the backbone is frozen and prompt embeddings are cached by prompt hash,
so a prompt that comes back (scored then updated, or drawn again) costs no forward pass.
In ``full`` mode the backbone trains too and nothing is cached.

This module knows nothing about HTTP. ``predict`` and ``update`` may be called from many
threads; a lock makes each call see one consistent model version.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from sweetspot_service.backbone import Backbone
from sweetspot_service.store import prompt_hash

TrainMode = Literal["head", "full"]


@dataclass(frozen=True)
class UpdateStats:
    version: int
    loss: float
    mse_before: float
    mae_before: float
    abs_errors_before: list[float]
    predictions_before: list[float]
    """p̂ per prompt before the first step, in request order (progressive validation)."""


class ValueModel:
    def __init__(
        self,
        backbone: Backbone,
        *,
        train_mode: TrainMode = "head",
        head_lr: float = 1e-3,
        backbone_lr: float = 1e-5,
        weight_decay: float = 0.01,
        grad_clip: float = 1.0,
        embedding_cache_size: int = 100_000,
        embedding_cache: EmbeddingCache | None = None,
        seed: int = 0,
    ) -> None:
        if train_mode not in ("head", "full"):
            raise ValueError(f"train_mode must be 'head' or 'full', got {train_mode!r}")
        torch.manual_seed(seed)
        self.backbone = backbone
        self.train_mode: TrainMode = train_mode
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

    def predict(self, prompts: list[str]) -> tuple[list[float], int]:
        """p̂ for each prompt and the version that produced them."""
        with self._lock, torch.inference_mode():
            features = self._features(prompts)
            return self._probabilities(features).tolist(), self.version

    def update(self, prompts: list[str], targets: list[float], steps: int = 1) -> UpdateStats:
        """``steps`` AdamW steps on the batch's squared error; returns errors before the first.

        ``loss`` is the batch MSE that the last step was taken on (equal to ``mse_before``
        when ``steps == 1``), as training logs conventionally report it.
        """
        if len(prompts) != len(targets) or not prompts:
            raise ValueError("update needs one target per prompt and at least one prompt")
        if any(not (0.0 <= t <= 1.0) or math.isnan(t) for t in targets):
            raise ValueError("targets must be probabilities in [0, 1]")
        y = torch.tensor(targets, dtype=torch.float32, device=self.backbone.device)  # [N]
        with self._lock:
            if self.train_mode == "head":
                with torch.inference_mode():
                    features = self._features(prompts).clone()  # [N, H]
                losses, before = self._fit(lambda: self._probabilities(features), y, steps)
            else:
                losses, before = self._fit(lambda: self._full_forward(prompts), y, steps)
            self.version += 1
            abs_errors = (before - y).abs()
            return UpdateStats(
                version=self.version,
                loss=losses[-1],
                mse_before=float((abs_errors**2).mean()),
                mae_before=float(abs_errors.mean()),
                abs_errors_before=abs_errors.tolist(),
                predictions_before=before.tolist(),
            )

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
        parts: list[Tensor] = []
        positions: list[int] = []
        for idx, batch in self.backbone.micro_batches(prompts):
            parts.append(self._probabilities(self.backbone.embed_batch(batch)))
            positions.extend(idx)
        stacked = torch.cat(parts)
        inverse = torch.empty(len(positions), dtype=torch.long)
        inverse[torch.tensor(positions)] = torch.arange(len(positions))
        return stacked[inverse.to(stacked.device)]

    def _features(self, prompts: list[str]) -> Tensor:
        """[N] prompts -> [N, H] pooled features, from the cache where possible."""
        return self._cache.features(prompts, self.backbone.embed)

    @property
    def cached_embeddings(self) -> int:
        return len(self._cache)

    def state(self) -> dict[str, Any]:
        """Everything needed to resume training: weights, optimiser, version (for checkpoints)."""
        with self._lock:
            state: dict[str, Any] = {
                "version": self.version,
                "train_mode": self.train_mode,
                "hidden_size": self.backbone.hidden_size,
                "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(),
            }
            if self.train_mode == "full":
                state["backbone"] = self.backbone.model.state_dict()
            return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()``; raises ``ValueError`` if it was made for another model shape."""
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
        with self._lock:
            self.head.load_state_dict(state["head"])
            if self.train_mode == "full":
                self.backbone.model.load_state_dict(state["backbone"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.version = int(state["version"])


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
