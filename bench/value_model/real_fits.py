"""The value models real_problems.py compares: features (cached backbone layers, surface
counts) and fits (the service's own ``ValueModel`` through ``CachedBackbone``, kernel ridge,
an MLP, nearest neighbours), each learning from a stream of (index, mean reward) batches."""

from __future__ import annotations

import math
import random
import re
import statistics
from collections.abc import Callable
from typing import Any

import torch
from real_features import layer_features
from torch import Tensor, nn
from tqdm import tqdm

from sweetspot_service.backbone import Backbone
from sweetspot_service.store import prompt_hash
from sweetspot_service.value_model import EmbeddingCache, ValueModel

FINETUNE_BATCH = 32  # the fine-tune's mini-batch, the protocol's update batch

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


class FineTuneFit(Fit):
    """Full mode on the window: the backbone (cut at its layer) and a head fine-tuned on every
    observation for a few epochs before predicting: the paper's value model trains its
    backbone; this is the most such an online fit could take from the same reports."""

    def __init__(self, texts: list[str], spec: str, epochs: int = 2, lr: float = 3e-5) -> None:
        name, _, layer = spec.partition("@")
        self.texts, self.name, self.epochs, self.lr = texts, name, epochs, lr
        self.layer = None if layer in ("", "last") else int(layer)
        self.seen: list[int] = []
        self.y: list[float] = []
        self._model: tuple[Backbone, nn.Module] | None = None

    def learn(self, idx: list[int], targets: list[float]) -> None:
        self.seen += idx
        self.y += targets
        self._model = None

    def _train(self) -> tuple[Backbone, nn.Module]:
        torch.manual_seed(0)
        backbone = Backbone.load(self.name, dtype="float32", layer=self.layer, max_length=256)
        backbone.model.float().train()
        linear = nn.Linear(backbone.hidden_size, 1)
        nn.init.zeros_(linear.weight)
        mean = min(max(statistics.fmean(self.y), 0.02), 0.98)
        nn.init.constant_(linear.bias, math.log(mean / (1 - mean)))
        head = nn.Sequential(nn.LayerNorm(backbone.hidden_size, elementwise_affine=False), linear)
        optimizer = torch.optim.AdamW(
            [
                {"params": head.parameters(), "lr": 1e-3},
                {"params": backbone.model.parameters(), "lr": self.lr},
            ],
            weight_decay=0.01,
        )
        order = list(range(len(self.seen)))
        rng = random.Random(0)
        steps = self.epochs * math.ceil(len(order) / FINETUNE_BATCH)
        with tqdm(total=steps, desc=f"fine-tune {self.name}", leave=False) as bar:
            for _ in range(self.epochs):
                rng.shuffle(order)
                for b in range(0, len(order), FINETUNE_BATCH):
                    rows = order[b : b + FINETUNE_BATCH]
                    texts = [self.texts[self.seen[r]] for r in rows]
                    y = torch.tensor([self.y[r] for r in rows])
                    optimizer.zero_grad(set_to_none=True)
                    parts, positions = [], []
                    for pos, batch in backbone.micro_batches(texts):
                        parts.append(torch.sigmoid(head(backbone.embed_batch(batch)).squeeze(-1)))
                        positions += pos
                    p_hat = torch.cat(parts)[torch.argsort(torch.tensor(positions))]
                    loss = torch.mean((p_hat - y) ** 2)
                    loss.backward()  # type: ignore[no-untyped-call]
                    nn.utils.clip_grad_norm_(list(optimizer.param_groups[1]["params"]), 1.0)
                    optimizer.step()
                    bar.update()
        backbone.model.eval()
        return backbone, head

    def predict(self, idx: list[int]) -> tuple[list[float], list[float] | None]:
        if self._model is None:
            self._model = self._train()
        backbone, head = self._model
        with torch.inference_mode():
            features = backbone.embed([self.texts[i] for i in idx])
            return torch.sigmoid(head(features.float()).squeeze(-1)).tolist(), None


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
    if kind == "finetune":
        return FineTuneFit([p["question"] for p in problems], spec)
    features = feature_matrix(spec, problems)
    if kind in ("", "ridge"):
        return ServiceFit([p["question"] for p in problems], features, draws)
    if kind in ("krr", "mlp", "knn"):
        return WindowFit(features, kind)
    raise SystemExit(f"config {config!r}: fit must be ridge, krr, mlp, knn or finetune")
