"""The head fitted in closed form on a decayed replay of observations (head mode's default).

One AdamW step per update left the head far from its fit (Spearman 0.29 on unseen prompts
where ridge on the same features reached 0.60, ``../shared/FACTS.md``). Here the head is the
weighted ridge regression of observed mean reward on frozen features, refitted after every
update from sufficient statistics, so the fit costs O(B·H² + H³) per update whatever the
window holds:

- each observation i (features x_i [H], mean reward y_i, n_i rewards, version v_i) weighs
  w_i = n_i · γ^(V − v_i), with γ = 0.5^(1 / half_life): the policy moves, so older
  observations count less (no decay when ``half_life`` is 0). V is the head's clock: the
  count of updates, or with policy versions (``observe(versions=)``) the newest version
  reported, so a late observation enters already discounted by its age;
- the statistics Σw, Σwx, Σwxxᵀ, Σwy, Σwxy (float64) are multiplied by γ^ΔV as the clock
  advances, grow by each new observation and shrink by each one that leaves the bounded
  window;
- the centred Gram matrix A = Σw(x − μ)(x − μ)ᵀ is eigendecomposed once per update and the
  coefficients β_α = (A + αI)⁻¹ Σw(x − μ)(y − ȳ) solved for every α of a grid; the α served
  is the one with the lowest decayed progressive-validation error (each first-seen prompt
  scored by every α's fit *before* it is learned from): regularisation chosen from the run's
  own data, for the prompts it has not tried, not tuned on a benchmark;
- predictions are on the probability scale, clamped to [0, 1]; with no observation the head
  predicts 0.5 (selection starts uniform, as before);
- ``leverage(x) = (x − μ)ᵀ(A + αI)⁻¹(x − μ)`` over its mean on the window says how unlike
  the observations so far a prompt is (``novelty``; ~1 for a typical observed prompt).

Everything is a function of the sequence of updates, so replicas replaying the same log and a
restart from ``state()`` plus the log give the same head (tests/unit/test_ridge.py).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch
from torch import Tensor

ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
"""The ridge penalties compared by progressive validation (features are LayerNorm'd)."""
_F64 = torch.float64
_SEEN_NOVELTY = 1024


def decay_factor(half_life: float) -> float:
    """γ: the weight an observation keeps per version (1.0 when ``half_life`` is 0)."""
    return 1.0 if half_life <= 0 else 0.5 ** (1.0 / half_life)


class RidgeHead:
    def __init__(self, hidden_size: int, *, window: int, half_life: float) -> None:
        if window < 1:
            raise ValueError(f"the replay window must hold at least 1 observation, got {window}")
        self.hidden_size = hidden_size
        self.window = window
        self.half_life = half_life
        self.gamma = decay_factor(half_life)
        h = hidden_size
        # The replay window: a ring buffer, grown on demand up to ``window`` rows.
        self._x = torch.zeros(0, h)  # [cap, H] float32 features
        self._y = torch.zeros(0, dtype=_F64)  # [cap] mean reward
        self._n = torch.zeros(0, dtype=_F64)  # [cap] rewards behind the mean
        self._v = torch.zeros(0, dtype=_F64)  # [cap] version that generated it
        self._start = 0
        self.size = 0
        self.version = 0.0
        """The clock observations are aged against (``observe``)."""
        # Decayed sufficient statistics at ``version``.
        self._sw = torch.zeros((), dtype=_F64)
        self._sx = torch.zeros(h, dtype=_F64)
        self._sxx = torch.zeros(h, h, dtype=_F64)
        self._sy = torch.zeros((), dtype=_F64)
        self._sxy = torch.zeros(h, dtype=_F64)
        self._errors = torch.zeros(len(ALPHAS), dtype=_F64)  # decayed progressive SSE per α
        # The fit, from the statistics (``_fit``): centre, eigenbasis, one β per α.
        self._mu = torch.zeros(h, dtype=_F64)
        self._ybar = 0.5
        self._lam = torch.zeros(h, dtype=_F64)
        self._q = torch.eye(h, dtype=_F64)
        self._betas = torch.zeros(len(ALPHAS), h, dtype=_F64)
        self._best = ALPHAS.index(30.0)
        self._fitted = False
        self._seen_novelty: deque[float] = deque(maxlen=_SEEN_NOVELTY)
        """Novelty of the last reported prompts before they were learned from."""
        self._fit()

    # Reads ------------------------------------------------------------------------------

    @property
    def alpha(self) -> float:
        return ALPHAS[self._best]

    def predict_all(self, features: Tensor) -> Tensor:
        """[N, H] features -> [N, len(ALPHAS)] p̂ of every α's fit (for validation)."""
        if not self._fitted:
            return torch.full((features.shape[0], len(ALPHAS)), 0.5, dtype=_F64)
        raw = (features.to(_F64) - self._mu) @ self._betas.T + self._ybar  # [N, A]
        return raw.clamp(0.0, 1.0)

    def predict(self, features: Tensor) -> Tensor:
        """[N, H] features -> [N] p̂ of the served fit, float64."""
        if not self._fitted:
            return torch.full((features.shape[0],), 0.5, dtype=_F64)
        raw = (features.to(_F64) - self._mu) @ self._betas[self._best] + self._ybar
        return raw.clamp(0.0, 1.0)

    @property
    def familiar(self) -> float:
        """How novel the run's own new prompts usually are: the 95th percentile of the novelty
        each reported prompt had before it was learned from (the last ``_SEEN_NOVELTY`` of
        them; at least 1)."""
        if not self._seen_novelty:
            return 1.0
        ordered = sorted(self._seen_novelty)
        return max(1.0, ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))])

    def predict_shrunk(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """[N, H] -> ([N] p̂, [N] novelty): the served fit, pulled toward the observations'
        mean ȳ for prompts more novel than the run's own new prompts usually are
        (``familiar``), by familiar / novelty. Within that range the fit's p̂ is kept; far
        outside it, where a linear fit only extrapolates, the prompt is predicted near the
        run's average instead of at a clamped 0 or 1 (``bench/value_model/cross_family.py``)."""
        novelty = self.novelty(features)
        if not self._fitted:
            return self.predict(features), novelty
        keep = (self.familiar / novelty).clamp(max=1.0)
        return self._ybar + (self.predict(features) - self._ybar) * keep, novelty

    def novelty(self, features: Tensor) -> Tensor:
        """[N, H] -> [N]: leverage relative to the window's mean leverage (1 ≈ typical;
        large for prompts unlike any observation). Without observations: +inf."""
        if not self._fitted:
            return torch.full((features.shape[0],), math.inf, dtype=_F64)
        z = (features.to(_F64) - self._mu) @ self._q  # [N, H] in the eigenbasis
        shrink = 1.0 / (self._lam + self.alpha)  # [H]
        leverage = (z**2) @ shrink  # [N]
        mean = float((self._lam * shrink).sum() / self._sw)  # trace((A+αI)⁻¹A) / Σw
        return leverage / max(mean, 1e-12)

    # Learning ---------------------------------------------------------------------------

    def observe(
        self,
        features: Tensor,
        targets: Tensor,
        counts: Tensor,
        fresh: Tensor | None = None,
        versions: Tensor | None = None,
    ) -> None:
        """Learn one update: [B, H] features, [B] mean rewards, [B] reward counts.

        ``versions`` [B]: the policy version that generated each observation; the clock
        moves to the newest of them (never back) and each enters with weight n·γ^(clock − v).
        None: the update is one version newer than the clock (a synchronous trainer).

        Scores the batch with every α first (progressive validation), then decays, adds the
        batch, evicts what no longer fits the window, refits, and advances the version.
        ``fresh`` [B] bool marks the prompts reported for the first time (default: all). Only
        they score the α's: the served prior is for prompts the run has not tried, and a
        revisited prompt rewards the α that memorises its own earlier report: with every
        report scoring, α fell to the grid's low end and
        ``bench/value_model/prediction_accuracy.py``'s smollm2/head Spearman on unseen prompts
        was 0.530 ± 0.077; first-seen only, 0.602 ± 0.035 (same 5 splits). Revisited prompts
        get their own posterior (``history.py``), whose pseudo-count is validated on them.
        """
        x = features.to(_F64)
        y, n = targets.to(_F64), counts.to(_F64)
        clock = self.version + 1 if versions is None else max(self.version, float(versions.max()))
        v = torch.full_like(y, clock) if versions is None else versions.to(_F64)
        g = self.gamma ** (clock - self.version)
        self._errors = self._errors * g
        if self._fitted:
            first = torch.ones_like(y, dtype=torch.bool) if fresh is None else fresh.bool()
            if bool(first.any()):
                xf, yf, nf = x[first], y[first], n[first]
                self._errors += ((self.predict_all(xf) - yf[:, None]) ** 2 * nf[:, None]).sum(0)
                self._seen_novelty.extend(self.novelty(xf).tolist())
        self.version = clock
        for stat in (self._sw, self._sx, self._sxx, self._sy, self._sxy):
            stat.mul_(g)
        self._accumulate(x, y, n * self.gamma ** (clock - v), sign=1.0)
        self._push(features.float(), y, n, v)
        self._fit()

    def _accumulate(self, x: Tensor, y: Tensor, w: Tensor, *, sign: float) -> None:
        """Add (sign=1) or remove (-1) observations of weight ``w`` [B] to the statistics."""
        wx = x * (sign * w)[:, None]  # [B, H]
        self._sw += sign * w.sum()
        self._sx += wx.sum(0)
        self._sxx += wx.T @ x
        self._sy += sign * (w * y).sum()
        self._sxy += wx.T @ y

    def _push(self, x: Tensor, y: Tensor, n: Tensor, v: Tensor) -> None:
        for row in range(x.shape[0]):
            if self.size == self.window:  # evict the oldest, at its current decayed weight
                i = self._start
                age = self.version - float(self._v[i])
                w = self._n[i : i + 1] * self.gamma**age
                self._accumulate(self._x[i : i + 1].to(_F64), self._y[i : i + 1], w, sign=-1.0)
                self._start = (self._start + 1) % self.window
                self.size -= 1
            if self._x.shape[0] < self.window and self.size == self._x.shape[0]:
                self._grow()
            slot = (self._start + self.size) % self._x.shape[0]
            self._x[slot], self._y[slot], self._n[slot] = x[row], y[row], n[row]
            self._v[slot] = v[row]
            self.size += 1

    def _grow(self) -> None:
        """Double the ring (up to ``window``), keeping rows in order from slot 0."""
        cap = min(self.window, max(64, 2 * self._x.shape[0]))
        idx = self._order()
        grown = [torch.zeros(cap, self.hidden_size)] + [
            torch.zeros(cap, dtype=t.dtype) for t in (self._y, self._n, self._v)
        ]
        for new, old in zip(grown, (self._x, self._y, self._n, self._v), strict=True):
            new[: self.size] = old[idx]
        self._x, self._y, self._n, self._v = grown
        self._start = 0

    def _fit(self) -> None:
        if float(self._sw) <= 0.0:
            self._fitted = False
            self._best = ALPHAS.index(30.0)
            return
        sw = self._sw
        self._mu = self._sx / sw  # [H]
        self._ybar = float(self._sy / sw)
        a = self._sxx - torch.outer(self._sx, self._sx) / sw  # centred Gram [H, H]
        b = self._sxy - self._sx * (self._sy / sw)  # [H]
        lam, q = torch.linalg.eigh((a + a.T) / 2)
        self._lam, self._q = lam.clamp(min=0.0), q
        qb = q.T @ b  # [H]
        alphas = torch.tensor(ALPHAS, dtype=_F64)
        self._betas = (qb[None, :] / (self._lam[None, :] + alphas[:, None])) @ q.T  # [A, H]
        self._fitted = True
        errors = self._errors.tolist()
        self._best = (
            min(range(len(ALPHAS)), key=errors.__getitem__) if any(errors) else ALPHAS.index(30.0)
        )

    # Persistence ------------------------------------------------------------------------

    def _order(self) -> Tensor:
        """Slots of the ring's rows, oldest first: [size]."""
        slots = [(self._start + k) % max(1, self._x.shape[0]) for k in range(self.size)]
        return torch.tensor(slots, dtype=torch.long)

    def state(self) -> dict[str, Any]:
        order = self._order()
        return {
            "window": self.window,
            "half_life": self.half_life,
            "version": self.version,
            "x": self._x[order].clone(),
            "y": self._y[order].clone(),
            "n": self._n[order].clone(),
            "v": self._v[order].clone(),
            "stats": [t.clone() for t in (self._sw, self._sx, self._sxx, self._sy, self._sxy)],
            "errors": self._errors.clone(),
            "seen_novelty": list(self._seen_novelty),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()``. With the same window and half-life the statistics are restored
        as saved, so a restart continues bit for bit; otherwise they are rebuilt from the
        saved observations (the newest ``window`` of them) under the new settings."""
        if state["x"].shape[-1] != self.hidden_size:
            raise ValueError(
                f"the replay window holds {state['x'].shape[-1]}-dimensional features, the "
                f"backbone gives {self.hidden_size}: it was written for another backbone or layer"
            )
        same = float(state["half_life"]) == self.half_life and int(state["window"]) == self.window
        keep = slice(max(0, int(state["x"].shape[0]) - self.window), None)
        x, y, n, v = (state[k][keep] for k in ("x", "y", "n", "v"))
        size = int(x.shape[0])
        cap = max(size, 1)
        self._x = torch.zeros(cap, self.hidden_size)
        self._y, self._n = torch.zeros(cap, dtype=_F64), torch.zeros(cap, dtype=_F64)
        self._v = torch.zeros(cap, dtype=_F64)  # releases before policy versions: integers
        self._x[:size], self._y[:size], self._n[:size], self._v[:size] = x, y, n, v.to(_F64)
        self._start, self.size = 0, size
        self.version = float(state["version"])
        self._seen_novelty.clear()
        if same:
            self._sw, self._sx, self._sxx, self._sy, self._sxy = (t.clone() for t in state["stats"])
            self._errors = state["errors"].clone()
            self._seen_novelty.extend(state.get("seen_novelty", []))
        else:
            for stat in (self._sw, self._sx, self._sxx, self._sy, self._sxy, self._errors):
                stat.zero_()
            weights = n.to(_F64) * self.gamma ** (self.version - v.to(_F64))
            self._accumulate(x.to(_F64), y.to(_F64), weights, sign=1.0)
        self._fit()
