"""The value models real_problems.py compares: features (cached backbone layers, surface
counts) and fits (the service's own ``ValueModel`` through ``CachedBackbone``, kernel ridge,
an MLP, nearest neighbours), each learning from a stream of (index, mean reward) batches."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from real_features import layer_features
from torch import Tensor, nn

from sweetspot_service.store import prompt_hash
from sweetspot_service.value_model import EmbeddingCache, ValueModel

# Features ------------------------------------------------------------------------------


def surface(text: str) -> list[float]:
    """A few counts of the text: length, numbers, LaTeX, lines (log-scaled)."""
    counts = (
        len(text),
        len(re.findall(r"\d+(?:\.\d+)?", text)),
        text.count("$") + text.count("\\"),
        text.count("\n") + 1,
        len(text.split()),
    )
    return [math.log1p(c) for c in counts]


def feature_matrix(spec: str, problems: list[dict[str, Any]]) -> Tensor:
    """``backbone@layer+…[+surface]`` -> [N, D]: each block LayerNorm'd, then concatenated."""
    texts = [p["question"] for p in problems]
    blocks: list[Tensor] = []
    for part in spec.split("+"):
        if part == "surface":
            raw = torch.tensor([surface(t) for t in texts])
            block = (raw - raw.mean(0)) / raw.std(0).clamp(min=1e-6)
        else:
            name, _, layer = part.partition("@")
            cached = layer_features(name, texts)  # [N, L + 1, H]
            index = cached.shape[1] - 1 if layer == "last" else int(layer)
            block = nn.functional.layer_norm(cached[:, index], (cached.shape[-1],))
        blocks.append(block)
    return torch.cat(blocks, dim=1)


class CachedBackbone:
    """What ``ValueModel`` reads of a ``Backbone``, serving precomputed rows by text: the
    benchmark runs the service's value model on features computed once (``real_features``)."""

    def __init__(self, texts: list[str], features: Tensor) -> None:
        self._rows = {prompt_hash(t): i for i, t in enumerate(texts)}
        self._features = features
        self.hidden_size = int(features.shape[1])
        self.device = torch.device("cpu")
        self.layer: int | None = None
        self.model = nn.Linear(1, 1)  # frozen in head mode; never called

    def embed(self, prompts: list[str]) -> Tensor:
        return self._features[[self._rows[prompt_hash(p)] for p in prompts]]


# Fits: each learns from a stream of (index, mean reward) batches and predicts indices -------


class Fit:
    """One value model under test: ``learn`` a batch, ``predict`` indices (p̂, sd or None)."""

    def learn(self, idx: list[int], targets: list[float]) -> None:
        raise NotImplementedError

    def predict(self, idx: list[int]) -> tuple[list[float], list[float] | None]:
        raise NotImplementedError


class ServiceFit(Fit):
    """The service's ``ValueModel`` (head mode, ridge on the replay window, posterior)."""

    def __init__(self, texts: list[str], features: Tensor, draws: int) -> None:
        self.texts, self.draws = texts, draws
        backbone = CachedBackbone(texts, features)
        self.model = ValueModel(backbone, embedding_cache=EmbeddingCache(0))  # type: ignore[arg-type]

    def learn(self, idx: list[int], targets: list[float]) -> None:
        self.model.update([self.texts[i] for i in idx], targets, counts=[self.draws] * len(idx))

    def predict(self, idx: list[int]) -> tuple[list[float], list[float] | None]:
        scored, _ = self.model.score([self.texts[i] for i in idx])
        return [s.p for s in scored], [s.sd for s in scored]


class WindowFit(Fit):
    """Fits that keep every observation and refit on the whole window before predicting."""

    def __init__(self, features: Tensor, kind: str) -> None:
        self.x = features
        self.kind = kind
        self.seen: list[int] = []
        self.y: list[float] = []
        self._fitted: Callable[[Tensor], Tensor] | None = None

    def learn(self, idx: list[int], targets: list[float]) -> None:
        self.seen += idx
        self.y += targets
        self._fitted = None

    def predict(self, idx: list[int]) -> tuple[list[float], list[float] | None]:
        if self._fitted is None:
            x, y = self.x[self.seen].double(), torch.tensor(self.y, dtype=torch.float64)
            self._fitted = {"krr": _krr, "mlp": _mlp, "knn": _knn}[self.kind](x, y)
        out = self._fitted(self.x[idx].double()).clamp(0.0, 1.0)
        return out.tolist(), None


def _split_validation(n: int) -> tuple[Tensor, Tensor]:
    """Indices of a fixed 80/20 split of the window (hyper-parameters from the run's data)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * n)
    return order[:cut], order[cut:]


def _krr(x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
    """Kernel ridge, RBF kernel on unit-normalised features; bandwidth and penalty chosen on
    a held-back fifth of the window, then refitted on all of it."""
    x = x / x.norm(dim=1, keepdim=True)
    train, val = _split_validation(len(y))

    def solve(xs: Tensor, ys: Tensor, gamma: float, lam: float) -> Callable[[Tensor], Tensor]:
        mean = ys.mean()
        k = torch.exp(-gamma * torch.cdist(xs, xs) ** 2)
        alpha = torch.linalg.solve(k + lam * torch.eye(len(ys), dtype=k.dtype), ys - mean)

        def f(z: Tensor) -> Tensor:
            z = z / z.norm(dim=1, keepdim=True)
            return torch.exp(-gamma * torch.cdist(z, xs) ** 2) @ alpha + mean

        return f

    best = min(
        ((g, lam) for g in (0.25, 0.5, 1.0, 2.0, 4.0) for lam in (0.3, 1.0, 3.0, 10.0, 30.0)),
        key=lambda gl: float(
            ((solve(x[train], y[train], *gl)(x[val]).clamp(0, 1) - y[val]) ** 2).mean()
        ),
    )
    return solve(x, y, *best)


def _knn(x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
    """Mean reward of the 30 nearest observed problems by cosine similarity."""
    x = x / x.norm(dim=1, keepdim=True)

    def f(z: Tensor) -> Tensor:
        z = z / z.norm(dim=1, keepdim=True)
        near = (z @ x.T).topk(min(30, len(y)), dim=1).indices
        return y[near].mean(1)

    return f


def _mlp(x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
    """One hidden layer of 64, dropout, 30 epochs of AdamW on the window, squared error on
    the probability scale."""
    torch.manual_seed(0)
    xf, yf = x.float(), y.float()
    net = nn.Sequential(
        nn.Linear(x.shape[1], 64), nn.GELU(), nn.Dropout(0.2), nn.Linear(64, 1), nn.Sigmoid()
    )
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    for _ in range(30):
        for batch in torch.randperm(len(yf)).split(32):
            optimiser.zero_grad()
            loss = ((net(xf[batch]).squeeze(-1) - yf[batch]) ** 2).mean()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    net.eval()

    def f(z: Tensor) -> Tensor:
        with torch.no_grad():
            return net(z.float()).squeeze(-1).double()

    return f


def make_fit(config: str, problems: list[dict[str, Any]], draws: int) -> Fit:
    """The value model a config names (``features[:fit]``), each report the mean of ``draws``."""
    spec, _, kind = config.partition(":")
    features = feature_matrix(spec, problems)
    if kind in ("", "ridge"):
        return ServiceFit([p["question"] for p in problems], features, draws)
    if kind in ("krr", "mlp", "knn"):
        return WindowFit(features, kind)
    raise SystemExit(f"config {config!r}: fit must be ridge, krr, mlp or knn")
