"""Frozen features of the real problems, computed once per backbone and cached.

``bench/value_model/real_problems.py`` compares many feature sets and fits on the same problems; the
backbone's forward pass is the expensive part and does not depend on the fit, so every layer's
pooled output is computed once (one forward pass with ``output_hidden_states``) and kept in
``bench/.cache/`` (ignored by git). The pooling is the service's (``Backbone.embed_batch``:
last real token for causal LMs, mean over real tokens for encoders), and ``check_layer``
compares a cached layer with what ``Backbone.load(name, layer=L).embed`` computes, so the
benchmark scores the features the service would serve.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from sweetspot_service.backbone import Backbone

CACHE = Path(__file__).parents[1] / ".cache"


def layer_features(backbone_name: str, texts: list[str]) -> Tensor:
    """[N] texts -> [N, L + 1, H] float32: the pooled output of the embeddings (0) and of every
    block 1..L (the last one before the model's final norm, as ``--feature-layer L`` reads it),
    cached by backbone and texts."""
    digest = hashlib.sha256("\n\0".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{backbone_name}-{digest}.pt"
    if path.exists():
        cached: Tensor = torch.load(path)
        return cached
    backbone = Backbone.load(backbone_name, dtype="float32")
    out: Tensor | None = None
    with torch.inference_mode():
        batches = list(backbone.micro_batches(texts))
        for positions, batch in tqdm(batches, desc=f"{backbone_name} features", leave=False):
            hidden = backbone.model(**batch, output_hidden_states=True).hidden_states
            pooled = torch.stack([_pool(backbone, h, batch["attention_mask"]) for h in hidden], 1)
            if out is None:
                out = torch.empty(len(texts), *pooled.shape[1:])
            out[positions] = pooled.float()
    assert out is not None
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def _pool(backbone: Backbone, hidden: Tensor, mask: Tensor) -> Tensor:
    """[B, T, H] -> [B, H], exactly as ``Backbone.embed_batch`` pools."""
    if backbone.pooling == "last":
        last = mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0]), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def check_layer(backbone_name: str, texts: list[str], features: Tensor, layer: int) -> float:
    """Largest |difference| between the cached layer and the service's own backbone on a few
    texts (float32 both): the cache must hold what the service would compute."""
    backbone = Backbone.load(backbone_name, dtype="float32", layer=layer)
    sample = texts[:16]
    served = backbone.embed(sample)
    return float((served - features[: len(sample), layer]).abs().max())
