"""DPS, Dynamics-Predictive Sampling (Mao et al., ICLR 2026, arXiv 2603.10887): a hidden
Markov model of each prompt's solving state, filtered online from past rewards; before any
rollout, keep the candidates most likely to be partly solved.

Written from the paper and the authors' description of their sampler (``maoyixiu/DPS``,
``recipe/dps/task_sampler.py``); the model, per prompt:

- states ``UNSOLVED`` (every answer wrong), ``PARTLY`` (some right: the group teaches GRPO
  something), ``SOLVED`` (every answer right);
- a transition matrix P[i][j] = P(state j at the prompt's next step | state i now), the mean of
  a Dirichlet per row whose counts start at the prior ``prior_counts`` and learn from soft
  transition counts; every step the counts decay towards the prior,
  ``counts ← λ·counts + (1 − λ)·prior (+ soft counts if observed)``, so the model follows a
  policy whose dynamics change;
- observations without noise: a rolled-out group reveals its state (``observed_state``), so the
  posterior after an observation is that state (one-hot); without one it equals the prior;
- forward filtering once per training step for every prompt seen so far: the predictive belief
  for the next step is ``posterior · P``; the soft counts of an observation are
  ``ξ[i][j] ∝ posterior_before[i] · P[i][j] · [j = observed]`` (normalised to sum 1).

Prompts never observed hold ``initial`` (uniform by default): DPS knows nothing about them,
where a value model predicts from the text. The authors' code also moves candidates that were
offered but never rolled out through the prior transition; with the default uniform prior that
leaves them where they were, as here.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from sweetspot_trainer.config import InitialBelief, TransitionPrior
from sweetspot_trainer.selection.base import Selection, StrategyContext, is_effective

UNSOLVED, PARTLY, SOLVED = 0, 1, 2
STATES = 3

Belief = list[float]  # [3]: probability of UNSOLVED, PARTLY, SOLVED
Matrix = list[list[float]]  # [3][3]: row = state now, column = state at the next step

# Shapes of the prior transition counts (rows: from; columns: to), as the paper's code offers.
TRANSITION_PRIORS: dict[TransitionPrior, Matrix] = {
    "uniform": [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
    "progress": [[1.0, 1.0, 1.0], [0.5, 1.0, 1.0], [0.5, 0.5, 1.0]],  # forgetting is rarer
    "stability": [[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]],  # states tend to stay
    "local": [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]],  # one state per step at most
}
INITIAL_BELIEFS: dict[InitialBelief, Belief] = {
    "uniform": [1 / 3, 1 / 3, 1 / 3],
    "unsolved": [1.0, 0.0, 0.0],
    "partly": [0.0, 1.0, 0.0],
    "solved": [0.0, 0.0, 1.0],
}


def observed_state(rewards: list[float]) -> int:
    """The state a group of rewards ([n]) reveals: ``PARTLY`` when they differ, else
    ``SOLVED`` when their common value is at least 0.5 (all right), else ``UNSOLVED``.

    For binary rewards this is the paper's mapping (success rate 0, in between, 1); with
    partial credit a group of equal small credits counts as unsolved, as it teaches nothing.
    """
    if is_effective(rewards):
        return PARTLY
    return SOLVED if statistics.fmean(rewards) >= 0.5 else UNSOLVED


def transition(counts: Matrix) -> Matrix:
    """The expected transition matrix of Dirichlet rows ``counts``: each row over its sum."""
    return [[c / sum(row) for c in row] for row in counts]


def predict(belief: Belief, matrix: Matrix) -> Belief:
    """One step forward: ``belief · matrix``."""
    return [sum(belief[i] * matrix[i][j] for i in range(STATES)) for j in range(STATES)]


def soft_counts(before: Belief, matrix: Matrix, state: int) -> Matrix:
    """P(state i before, state j now | the observation ``state``) for each (i, j); all zero when
    the model gave the observation probability 0 (e.g. a jump the 'local' prior forbids)."""
    joint = [
        [before[i] * matrix[i][j] if j == state else 0.0 for j in range(STATES)]
        for i in range(STATES)
    ]
    total = sum(map(sum, joint))
    if total == 0.0:
        return [[0.0] * STATES for _ in range(STATES)]
    return [[x / total for x in row] for row in joint]


@dataclass
class _Track:
    counts: Matrix  # Dirichlet counts of this prompt's transitions
    posterior: Belief  # state distribution at the last step
    belief: Belief  # predictive distribution for the next step


class DPSFilter:
    """Forward filtering of every observed prompt's solving state, one ``step`` per training
    step. ``decay`` is λ in (0, 1]: 1 never forgets, smaller adapts faster."""

    def __init__(self, *, prior_counts: Matrix, decay: float, initial: Belief) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        if any(sum(row) <= 0 for row in prior_counts) or any(
            c < 0 for row in prior_counts for c in row
        ):
            raise ValueError("prior_counts need non-negative entries and a positive sum per row")
        self.prior_counts = [list(row) for row in prior_counts]
        self.decay = decay
        self.initial = list(initial)
        self._tracks: dict[str, _Track] = {}

    def __len__(self) -> int:
        """Prompts observed at least once."""
        return len(self._tracks)

    def belief(self, key: str) -> Belief:
        """P(state at the prompt's next rollout); ``initial`` for a prompt never observed."""
        track = self._tracks.get(key)
        return list(track.belief if track is not None else self.initial)

    def step(self, observed: Mapping[str, int]) -> None:
        """One training step: the prompts in ``observed`` revealed their state; every prompt
        seen so far moves one step forward."""
        for key in observed:
            if key not in self._tracks:
                counts = [list(row) for row in self.prior_counts]
                self._tracks[key] = _Track(counts, list(self.initial), list(self.initial))
        lam = self.decay
        for key, track in self._tracks.items():
            state = observed.get(key)
            if state is None:
                posterior, update = track.belief, [[0.0] * STATES for _ in range(STATES)]
            else:
                posterior = [1.0 if s == state else 0.0 for s in range(STATES)]
                update = soft_counts(track.posterior, transition(track.counts), state)
            track.counts = [
                [lam * c + (1 - lam) * c0 + u for c, c0, u in zip(row, row0, up, strict=True)]
                for row, row0, up in zip(track.counts, self.prior_counts, update, strict=True)
            ]
            track.posterior = posterior
            track.belief = predict(posterior, transition(track.counts))


class DPSStrategy:
    """Of k·m candidates keep the m with the highest predicted P(partly solved) (ties at random,
    seeded). Rollout-free; options ``dps_prior`` × ``dps_prior_count``, ``dps_decay``,
    ``dps_initial_belief``."""

    name = "dps"
    remote = False

    def __init__(self, ctx: StrategyContext) -> None:
        self.pool, self.m, self.k = ctx.pool, ctx.m, ctx.k
        self._sampler = ctx.sampler()
        self._rng = random.Random(ctx.seed + 4)
        prior = TRANSITION_PRIORS[ctx.dps_prior]
        self.filter = DPSFilter(
            prior_counts=[[c * ctx.dps_prior_count for c in row] for row in prior],
            decay=ctx.dps_decay,
            initial=INITIAL_BELIEFS[ctx.dps_initial_belief],
        )
        self._chosen_partly: list[float] = []

    def select(self) -> Selection:
        candidates = self._sampler.draw(min(self.k * self.m, len(self.pool)))
        partly = [self.filter.belief(self.pool[i].id)[PARTLY] for i in candidates]
        tie = [self._rng.random() for _ in candidates]
        order = sorted(range(len(candidates)), key=lambda j: (-partly[j], tie[j]))[: self.m]
        self._chosen_partly = [partly[j] for j in order]
        return Selection([self.pool[candidates[j]] for j in order])

    def observe(self, selection: Selection, rewards: list[list[float]]) -> dict[str, float]:
        states = {p.id: observed_state(r) for p, r in zip(selection.problems, rewards, strict=True)}
        self.filter.step(states)
        return {
            "dps_partly_predicted": statistics.fmean(self._chosen_partly),
            "dps_partly_observed": statistics.fmean(s == PARTLY for s in states.values()),
            "dps_tracked": float(len(self.filter)),
        }
