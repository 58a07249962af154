"""Near-τ selection: the one rule both the service and the client use.

Kept dependency-free so an external trainer can select locally from scores it already has.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


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
    n = len(scores)
    if not 1 <= m <= n:
        raise ValueError(f"m must be between 1 and the number of scores ({n}), got {m}")
    rng = rng or random.Random()
    tiebreak = [rng.random() for _ in range(n)]
    order = sorted(range(n), key=lambda i: (abs(scores[i] - tau), tiebreak[i]))
    return order[:m]
