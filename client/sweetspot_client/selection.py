"""Near-τ selection rules: the one implementation both the service and the client use.

Kept dependency-free so an external trainer can select locally from scores it already has.

- ``nearest`` (the PCL paper): the m candidates closest to τ.
- ``band``: uniformly at random among candidates within τ ± ε, topped up by distance when
  fewer than m fall inside; keeps diversity when many candidates are near τ.
- ``weighted``: m draws without replacement, each candidate weighted by p̂(1 − p̂)
  (the Bernoulli variance, largest at 0.5), so every candidate keeps some chance.
- ``signal``: the m candidates with the largest expected share of groups that carry a
  gradient, E[1 − pⁿ − (1 − p)ⁿ] for groups of n answers, under each candidate's
  posterior (a Beta with the score as mean and the uncertainty as standard deviation). The
  expectation is not the plug-in value: at the same mean, a wide posterior puts mass near 0
  and 1, where groups are all-wrong or all-right, so an uncertain candidate counts for less
  than a confident one (with n = 8: mean 0.05 gives 0.34 at sd 0, 0.24 at sd 0.08).
- ``random``: m of the candidates uniformly at random, scores ignored: the placebo that
  shares every other step with the rules above (same candidates, same service calls).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

SelectionRule = Literal["nearest", "band", "weighted", "signal", "random"]


def _check_m(scores: Sequence[float], m: int) -> None:
    if not 1 <= m <= len(scores):
        raise ValueError(f"m must be between 1 and the number of scores ({len(scores)}), got {m}")


def select_nearest(
    scores: Sequence[float],
    m: int,
    tau: float = 0.5,
    *,
    rng: random.Random | None = None,
) -> list[int]:
    """Indices of the ``m`` scores closest to ``tau``, closest first.

    Equal distances are ordered at random (a fresh value model predicts the same p̂ for
    every prompt, and a fixed order would then always pick the first candidates).

    Args:
        scores: predicted success probabilities, shape [N].
        m: how many to keep, 1 <= m <= N.
        tau: target probability.
        rng: source of tie-breaking randomness; a fresh unseeded one when omitted.

    Raises:
        ValueError: if ``m`` is outside [1, N].
    """
    _check_m(scores, m)
    n = len(scores)
    rng = rng or random.Random()
    tiebreak = [rng.random() for _ in range(n)]
    order = sorted(range(n), key=lambda i: (abs(scores[i] - tau), tiebreak[i]))
    return order[:m]


def select_band(
    scores: Sequence[float],
    m: int,
    tau: float = 0.5,
    *,
    epsilon: float = 0.2,
    rng: random.Random | None = None,
) -> list[int]:
    """``m`` indices drawn uniformly among scores within ``tau ± epsilon``; when fewer than
    ``m`` are inside, all of them, then the nearest of the rest."""
    _check_m(scores, m)
    rng = rng or random.Random()
    inside = [i for i, p in enumerate(scores) if abs(p - tau) <= epsilon]
    rng.shuffle(inside)
    if len(inside) >= m:
        return inside[:m]
    outside = [i for i in range(len(scores)) if abs(scores[i] - tau) > epsilon]
    rest = [
        outside[j]
        for j in select_nearest([scores[i] for i in outside], m - len(inside), tau, rng=rng)
    ]
    return inside + rest


def select_weighted(
    scores: Sequence[float],
    m: int,
    tau: float = 0.5,
    *,
    rng: random.Random | None = None,
    floor: float = 1e-3,
) -> list[int]:
    """``m`` indices sampled without replacement with weight p̂(1 − p̂) (+ ``floor``).

    ``tau`` is unused by the variance weight (it peaks at 0.5); it is accepted so every
    rule has the same signature. Uses the Efraimidis–Spirakis keys u^(1/w).
    """
    _check_m(scores, m)
    rng = rng or random.Random()
    keys = [rng.random() ** (1.0 / (p * (1.0 - p) + floor)) for p in scores]
    return sorted(range(len(scores)), key=lambda i: -keys[i])[:m]


def expected_signal(p: float, sd: float | None, group_size: int) -> float:
    """E[1 − pⁿ − (1 − p)ⁿ] for p ~ Beta with mean ``p`` and standard deviation ``sd``
    (a point mass when ``sd`` is None or 0): the chance a group of n answers is mixed.

    Uses E[pⁿ] = Π_{k<n} (a + k) / (a + b + k) for Beta(a, b).
    """
    p = min(max(p, 0.0), 1.0)
    variance = (sd or 0.0) ** 2
    if variance <= 0.0 or p in (0.0, 1.0):
        return 1.0 - p**group_size - (1.0 - p) ** group_size
    total = max(p * (1.0 - p) / min(variance, p * (1.0 - p) * 0.999) - 1.0, 1e-9)
    a, b = p * total, (1.0 - p) * total
    all_right = all_wrong = 1.0
    for k in range(group_size):
        all_right *= (a + k) / (a + b + k)
        all_wrong *= (b + k) / (a + b + k)
    return 1.0 - all_right - all_wrong


def select_signal(
    scores: Sequence[float],
    m: int,
    tau: float = 0.5,
    *,
    uncertainty: Sequence[float] | None = None,
    group_size: int = 8,
    rng: random.Random | None = None,
) -> list[int]:
    """Indices of the ``m`` largest ``expected_signal``, best first (ties at random).

    ``tau`` is unused (a mixed group is the signal, whatever τ); accepted so every rule has
    the same signature. ``uncertainty`` [N] is the scores' standard deviations.
    """
    _check_m(scores, m)
    if uncertainty is not None and len(uncertainty) != len(scores):
        raise ValueError("uncertainty must have one entry per score")
    rng = rng or random.Random()
    sds = list(uncertainty) if uncertainty is not None else [None] * len(scores)
    value = [expected_signal(p, sd, group_size) for p, sd in zip(scores, sds, strict=True)]
    tiebreak = [rng.random() for _ in scores]
    return sorted(range(len(scores)), key=lambda i: (-value[i], tiebreak[i]))[:m]


def select_random(
    scores: Sequence[float],
    m: int,
    tau: float = 0.5,
    *,
    rng: random.Random | None = None,
) -> list[int]:
    """``m`` indices uniformly at random without replacement; ``scores`` and ``tau`` only
    fix how many candidates there are (the placebo arm of a selection experiment)."""
    _check_m(scores, m)
    return (rng or random.Random()).sample(range(len(scores)), m)


SELECTION_RULES: dict[str, Callable[..., list[int]]] = {
    "nearest": select_nearest,
    "band": select_band,
    "weighted": select_weighted,
    "signal": select_signal,
    "random": select_random,
}


def select(
    scores: Sequence[float],
    m: int,
    tau: float = 0.5,
    *,
    rule: str = "nearest",
    epsilon: float = 0.2,
    uncertainty: Sequence[float] | None = None,
    group_size: int = 8,
    rng: random.Random | None = None,
) -> list[int]:
    """Apply the selection rule named ``rule``; raises ``ValueError`` listing valid names."""
    if rule not in SELECTION_RULES:
        raise ValueError(
            f"unknown selection rule {rule!r}; choose one of {sorted(SELECTION_RULES)}"
        )
    if rule == "band":
        return select_band(scores, m, tau, epsilon=epsilon, rng=rng)
    if rule == "signal":
        return select_signal(
            scores, m, tau, uncertainty=uncertainty, group_size=group_size, rng=rng
        )
    return SELECTION_RULES[rule](scores, m, tau, rng=rng)
