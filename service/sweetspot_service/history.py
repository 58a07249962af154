"""Each prompt's own reward history, and the posterior that blends it with the head's p̂.

A prompt the run has reported is no longer only its text: it came back s of n. The posterior
treats the value model's p̂ as a Beta prior worth ``c`` pseudo-observations and adds the
prompt's own decayed successes and failures:

    a = c_eff·p̂ + s,   b = c_eff·(1 − p̂) + (n − s),   p_post = a / (a + b),
    sd = sqrt(p_post·(1 − p_post) / (a + b + 1))          (the Beta's standard deviation)

with n = Σ n_j γ^(V − v_j) and s = Σ n_j y_j γ^(V − v_j) over the prompt's reports (γ as in
``ridge.py``: the policy moves, old outcomes count less) and c_eff = c / max(1, novelty): a
prior for a prompt unlike anything observed (``RidgeHead.novelty`` ≫ 1) is worth fewer
pseudo-observations, so its sd is wide until the prompt is observed. ``c`` is chosen from a
grid by the run's own progressive validation on revisited prompts (each revisited prompt is
scored with every c before its new rewards are added), as the ridge chooses its α.

Bounded: the ``capacity`` most recently reported prompts are kept (least recently reported
forgotten first), so memory does not grow with the dataset. A function of the update
sequence, like the head: replicas and restarts agree.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor

from sweetspot_service.ridge import decay_factor

PSEUDO_COUNTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_DEFAULT_C = PSEUDO_COUNTS.index(8.0)
_F64 = torch.float64


class PromptHistory:
    def __init__(self, *, capacity: int, half_life: float) -> None:
        self.capacity = capacity
        self.gamma = decay_factor(half_life)
        self.version = 0
        self._items: OrderedDict[str, tuple[float, float, int]] = OrderedDict()
        """prompt hash -> (decayed reward count, decayed reward sum, version of both)."""
        self._errors = torch.zeros(len(PSEUDO_COUNTS), dtype=_F64)

    @property
    def pseudo_count(self) -> float:
        errors = self._errors.tolist()
        best = min(range(len(errors)), key=errors.__getitem__) if any(errors) else _DEFAULT_C
        return PSEUDO_COUNTS[best]

    def __len__(self) -> int:
        return len(self._items)

    def counts(self, hashes: list[str]) -> tuple[Tensor, Tensor]:
        """Decayed (reward count n, reward sum s) per prompt at the current version: [N], [N]."""
        n = torch.zeros(len(hashes), dtype=_F64)
        s = torch.zeros(len(hashes), dtype=_F64)
        for i, h in enumerate(hashes):
            if (item := self._items.get(h)) is not None:
                factor = self.gamma ** (self.version - item[2])
                n[i], s[i] = item[0] * factor, item[1] * factor
        return n, s

    def posterior(
        self,
        prior: Tensor,
        novelty: Tensor | None,
        hashes: list[str],
        *,
        pseudo_count: float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Posterior mean and sd per prompt ([N] each) from the prior p̂ [N]."""
        n, s = self.counts(hashes)
        return beta_posterior(
            prior.to(_F64), n, s, self._effective(novelty, pseudo_count or self.pseudo_count)
        )

    def prior_sd(self, prior: Tensor, novelty: Tensor | None) -> Tensor:
        """The sd of the prior alone, as for a prompt with no reward of its own: [N]."""
        zero = torch.zeros_like(prior, dtype=_F64)
        return beta_posterior(
            prior.to(_F64), zero, zero, self._effective(novelty, self.pseudo_count)
        )[1]

    def observe(
        self,
        hashes: list[str],
        targets: Tensor,
        counts: Tensor,
        prior: Tensor,
        novelty: Tensor | None,
    ) -> None:
        """Score revisited prompts with every c (progressive validation), then add the batch.

        ``targets`` [B] mean rewards, ``counts`` [B] rewards behind them, ``prior`` [B] the
        head's p̂ before this update.
        """
        y, w = targets.to(_F64), counts.to(_F64)
        n, s = self.counts(hashes)
        seen = n > 0
        if bool(seen.any()):
            err = torch.stack(
                [
                    (
                        (beta_posterior(prior.to(_F64), n, s, self._effective(novelty, c))[0] - y)
                        ** 2
                        * w
                    )[seen].sum()
                    for c in PSEUDO_COUNTS
                ]
            )
            self._errors = self._errors * self.gamma + err
        else:
            self._errors = self._errors * self.gamma
        self.version += 1
        for h, mean, count in zip(hashes, y.tolist(), w.tolist(), strict=True):
            old_n, old_s, old_v = self._items.pop(h, (0.0, 0.0, self.version))
            factor = self.gamma ** (self.version - old_v)
            self._items[h] = (old_n * factor + count, old_s * factor + count * mean, self.version)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    @staticmethod
    def _effective(novelty: Tensor | None, c: float) -> Tensor | float:
        return c if novelty is None else c / novelty.clamp(min=1.0)

    def state(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "items": [(h, n, s, v) for h, (n, s, v) in self._items.items()],
            "errors": self._errors.clone(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.version = int(state["version"])
        items = state["items"][-self.capacity :]
        self._items = OrderedDict((h, (float(n), float(s), int(v))) for h, n, s, v in items)
        self._errors = state["errors"].clone()


def beta_posterior(prior: Tensor, n: Tensor, s: Tensor, c: Tensor | float) -> tuple[Tensor, Tensor]:
    """Mean and sd of Beta(c·p̂ + s, c·(1 − p̂) + n − s), elementwise over [N].

    With c = n = 0 (no prior weight, no observation) the mean is p̂ and the sd that of one
    pseudo-observation, sqrt(p̂(1 − p̂) / 1)... widest where nothing is known.
    """
    a = c * prior + s
    total = c + n
    mean = torch.where(total > 0, a / total.clamp(min=1e-12), prior)
    sd = torch.sqrt(mean * (1 - mean) / (total + 1))
    return mean, sd
