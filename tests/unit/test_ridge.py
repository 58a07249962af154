"""The replay ridge head and the per-prompt posterior: arithmetic, determinism, bounds."""

from __future__ import annotations

import math

import pytest
import torch

from sweetspot_service.history import PromptHistory, beta_posterior
from sweetspot_service.ridge import ALPHAS, RidgeHead

H = 6


def _stream(seed: int, updates: int, batch: int = 5) -> list[tuple[torch.Tensor, ...]]:
    """Updates of a linear world: y = clamp(0.3 + x·w), counts 1..4."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(H, generator=gen) * 0.1
    out = []
    for _ in range(updates):
        x = torch.randn(batch, H, generator=gen)
        y = (0.3 + x @ w).clamp(0, 1).double()
        n = torch.randint(1, 5, (batch,), generator=gen).double()
        out.append((x, y, n))
    return out


def _direct_fit(rows: list[tuple[torch.Tensor, ...]], gamma: float, alpha: float) -> torch.Tensor:
    """Weighted ridge with an unpenalised intercept, solved from scratch: [H+1] (β, b0)."""
    version = len(rows)
    xs, ys, ws = [], [], []
    for v, (x, y, n) in enumerate(rows, start=1):
        xs.append(x.double())
        ys.append(y)
        ws.append(n * gamma ** (version - v))
    x, y, w = torch.cat(xs), torch.cat(ys), torch.cat(ws)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    penalty = torch.eye(H + 1, dtype=torch.float64) * alpha
    penalty[-1, -1] = 0.0
    return torch.linalg.solve(design.T @ (design * w[:, None]) + penalty, design.T @ (w * y))


@pytest.mark.parametrize("half_life", [0.0, 3.0])
def test_the_served_fit_is_the_weighted_ridge_solution(half_life: float) -> None:
    head = RidgeHead(H, window=1000, half_life=half_life)
    rows = _stream(0, 12)
    for x, y, n in rows:
        head.observe(x, y, n)
    coef = _direct_fit(rows, head.gamma, head.alpha)
    probe = torch.randn(9, H, generator=torch.Generator().manual_seed(5))
    expected = (probe.double() @ coef[:-1] + coef[-1]).clamp(0, 1)
    torch.testing.assert_close(head.predict(probe), expected, atol=1e-9, rtol=1e-9)


def test_a_fresh_head_predicts_one_half_and_knows_nothing() -> None:
    head = RidgeHead(H, window=10, half_life=0)
    x = torch.randn(3, H)
    assert head.predict(x).tolist() == [0.5, 0.5, 0.5]
    assert all(math.isinf(v) for v in head.novelty(x).tolist())


def test_the_window_forgets_exactly_what_it_evicts() -> None:
    rows = _stream(1, 10, batch=3)
    bounded = RidgeHead(H, window=7, half_life=4.0)
    for x, y, n in rows:
        bounded.observe(x, y, n)
    assert bounded.size == 7
    # The last 7 observations alone, at their ages: the same statistics, so the same fit.
    kept = _rows_of(rows)[-7:]
    fresh = RidgeHead(H, window=7, half_life=4.0)
    x = torch.cat([k[0] for k in kept]).double()
    y = torch.cat([k[1] for k in kept])
    w = torch.cat([k[2] * fresh.gamma ** (len(rows) - k[3]) for k in kept])
    fresh._accumulate(x, y, w, sign=1.0)
    fresh.version = len(rows)
    fresh._errors = bounded._errors.clone()
    fresh._fit()
    probe = torch.randn(4, H)
    torch.testing.assert_close(bounded.predict(probe), fresh.predict(probe), atol=1e-8, rtol=1e-8)


def _rows_of(rows: list[tuple[torch.Tensor, ...]]) -> list[tuple[torch.Tensor, ...]]:
    """One (x [1, H], y [1], n [1], version) per observation, in order."""
    out = []
    for v, (x, y, n) in enumerate(rows, start=1):
        for i in range(x.shape[0]):
            out.append((x[i : i + 1], y[i : i + 1], n[i : i + 1], v))
    return out


def test_replay_and_restart_give_the_same_head_bit_for_bit() -> None:
    rows = _stream(2, 20)
    one, two = RidgeHead(H, window=40, half_life=8.0), RidgeHead(H, window=40, half_life=8.0)
    for x, y, n in rows:
        one.observe(x, y, n)
        two.observe(x, y, n)
    restarted = RidgeHead(H, window=40, half_life=8.0)
    partial = RidgeHead(H, window=40, half_life=8.0)
    for x, y, n in rows[:13]:
        partial.observe(x, y, n)
    restarted.load_state(partial.state())
    for x, y, n in rows[13:]:
        restarted.observe(x, y, n)
    probe = torch.randn(6, H)
    assert torch.equal(one.predict(probe), two.predict(probe))
    assert torch.equal(one.predict(probe), restarted.predict(probe))
    assert one.alpha == restarted.alpha


def test_other_replay_settings_rebuild_the_statistics_from_the_window() -> None:
    rows = _stream(3, 6)
    head = RidgeHead(H, window=100, half_life=0.0)
    for x, y, n in rows:
        head.observe(x, y, n)
    decayed = RidgeHead(H, window=100, half_life=2.0)
    decayed.load_state(head.state())
    direct = RidgeHead(H, window=100, half_life=2.0)
    for x, y, n in rows:
        direct.observe(x, y, n)
    direct._errors = decayed._errors.clone()
    direct._fit()
    probe = torch.randn(5, H)
    torch.testing.assert_close(decayed.predict(probe), direct.predict(probe))


def test_noise_gets_a_strong_penalty_and_signal_a_weak_one() -> None:
    gen = torch.Generator().manual_seed(4)
    noise, signal = RidgeHead(H, window=5000, half_life=0), RidgeHead(H, window=5000, half_life=0)
    w = torch.tensor([0.2, -0.2, 0.1, 0.0, 0.0, 0.1])
    for _ in range(60):
        x = torch.randn(16, H, generator=gen)
        coin = torch.bernoulli(torch.full((16,), 0.3), generator=gen).double()
        noise.observe(x, coin, torch.ones(16))
        signal.observe(x, (0.5 + x @ w).clamp(0, 1).double(), torch.ones(16))
    assert noise.alpha >= 100.0
    assert signal.alpha <= 10.0
    assert noise.alpha in ALPHAS


def test_novelty_flags_prompts_unlike_the_window() -> None:
    head = RidgeHead(H, window=500, half_life=0)
    gen = torch.Generator().manual_seed(6)
    for _ in range(20):
        x = torch.randn(10, H, generator=gen)
        x[:, :3] = 0.0  # the window never varies in the first 3 directions
        head.observe(x, torch.rand(10, generator=gen).double(), torch.ones(10))
    seen = torch.randn(50, H, generator=gen)
    seen[:, :3] = 0.0
    unseen = torch.randn(50, H, generator=gen) * 0.5
    unseen[:, :3] += 5.0
    assert head.novelty(seen).median() < 2.0
    assert head.novelty(unseen).min() > 5 * head.novelty(seen).max()


def test_beta_posterior_matches_hand_computed_values() -> None:
    mean, sd = beta_posterior(
        torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64),
        torch.tensor([8.0, 0.0, 4.0], dtype=torch.float64),
        torch.tensor([2.0, 0.0, 4.0], dtype=torch.float64),
        torch.tensor([8.0, 8.0, 0.0], dtype=torch.float64),
    )
    # (8·0.2 + 2) / 16; no observation: the prior; no prior weight: the observed rate.
    assert mean.tolist() == pytest.approx([3.6 / 16, 0.5, 1.0])
    # The sd's Beta gets half a success and half a failure: (a + ½) / (c + n + 1).
    m = [4.1 / 17, 4.5 / 9, 4.5 / 5]
    assert sd.tolist() == pytest.approx(
        [
            math.sqrt(m[0] * (1 - m[0]) / 18),
            math.sqrt(m[1] * (1 - m[1]) / 10),
            math.sqrt(m[2] * (1 - m[2]) / 6),
        ]
    )


@pytest.mark.parametrize("p_hat", [0.0, 1.0])
def test_a_clamped_prior_still_carries_uncertainty_that_shrinks_with_weight(p_hat: float) -> None:
    """A p̂ of exactly 0 or 1 (a clamped fit, or all-equal rewards) never claims sd 0: the
    `signal` rule would see no signal anywhere (issue 31, finding 7)."""
    prior = torch.full((3,), p_hat, dtype=torch.float64)
    zero = torch.zeros(3, dtype=torch.float64)
    _, sd = beta_posterior(prior, zero, zero, torch.tensor([0.5, 4.0, 64.0], dtype=torch.float64))
    assert bool((sd > 0).all()) and sd[0] > sd[1] > sd[2]
    assert float(sd[0]) > 0.2  # a prompt unlike the window (c ≪ 1) is close to knowing nothing


def test_history_decays_with_versions_and_is_bounded() -> None:
    history = PromptHistory(capacity=2, half_life=1.0)  # a report halves each version
    prior = torch.tensor([0.5], dtype=torch.float64)
    history.observe(["a"], torch.tensor([1.0]), torch.tensor([4.0]), prior, None)
    history.observe(["b"], torch.tensor([0.0]), torch.tensor([2.0]), prior, None)
    n, s = history.counts(["a", "b", "never"])
    assert n.tolist() == [2.0, 2.0, 0.0] and s.tolist() == [2.0, 0.0, 0.0]
    history.observe(["c"], torch.tensor([0.5]), torch.tensor([2.0]), prior, None)
    assert len(history) == 2 and history.counts(["a"])[0].tolist() == [0.0]  # evicted


def test_own_observations_narrow_the_uncertainty_and_move_the_score() -> None:
    history = PromptHistory(capacity=100, half_life=0.0)
    prior = torch.tensor([0.5, 0.5], dtype=torch.float64)
    before_mean, before_sd = history.posterior(prior, None, ["x", "y"], pseudo_count=8.0)
    for _ in range(3):
        history.observe(["x"], torch.tensor([0.0]), torch.tensor([8.0]), prior[:1], None)
    mean, sd = history.posterior(prior, None, ["x", "y"], pseudo_count=8.0)
    assert mean[0] < 0.2 and mean[1] == before_mean[1]
    assert sd[0] < before_sd[0] and sd[1] == before_sd[1]


def test_the_pseudo_count_follows_the_runs_own_errors() -> None:
    """When the prior is always right, trust it (large c); when always wrong, the data."""
    gen = torch.Generator().manual_seed(7)

    def run(prior_right: bool) -> float:
        history = PromptHistory(capacity=1000, half_life=0.0)
        truth = torch.rand(40, generator=gen).double()
        hashes = [f"p{i}" for i in range(40)]
        prior = truth if prior_right else 1.0 - truth
        for _ in range(6):
            y = torch.bernoulli(truth[:, None].expand(40, 8), generator=gen).mean(1)
            history.observe(hashes, y, torch.full((40,), 8.0), prior, None)
        return float(history.served_counts(prior).median())

    assert run(prior_right=True) >= 16.0
    assert run(prior_right=False) <= 2.0


def test_prompts_far_from_the_window_are_predicted_near_the_runs_mean() -> None:
    head = RidgeHead(H, window=500, half_life=0)
    gen = torch.Generator().manual_seed(8)
    w = torch.tensor([0.0, 0.0, 0.0, 0.3, -0.2, 0.1])
    for _ in range(20):
        x = torch.randn(10, H, generator=gen)
        x[:, :3] = 0.0
        head.observe(x, (0.4 + x @ w).clamp(0, 1).double(), torch.ones(10))
    near = torch.randn(20, H, generator=gen)
    near[:, :3] = 0.0
    far = near.clone()
    far[:, :3] = 6.0  # directions the window never varied in: pure extrapolation
    shrunk_near, novelty_near = head.predict_shrunk(near)
    shrunk_far, _ = head.predict_shrunk(far)
    keep = (novelty_near <= head.familiar).nonzero().flatten()
    torch.testing.assert_close(shrunk_near[keep], head.predict(near)[keep])  # fit kept
    mean = float(head._sy / head._sw)
    assert (shrunk_far - mean).abs().max() < (head.predict(far) - mean).abs().max()
    assert (shrunk_far - mean).abs().max() < 0.05


def test_only_first_seen_prompts_choose_the_penalty() -> None:
    """A revisited prompt's report decays the α errors but adds nothing to them: it would
    reward the α that memorises its own earlier report."""
    rows = _stream(3, 6)
    head = RidgeHead(H, window=1000, half_life=4.0)
    for x, y, n in rows:
        head.observe(x, y, n)
    before = head._errors.clone()
    x, y, n = rows[0]
    head.observe(x, 1.0 - y, n, fresh=torch.zeros(len(y), dtype=torch.bool))
    torch.testing.assert_close(head._errors, before * head.gamma, atol=0, rtol=0)
    head.observe(x, 1.0 - y, n, fresh=torch.tensor([True] + [False] * (len(y) - 1)))
    assert not torch.equal(head._errors, before * head.gamma**2)  # the fresh row counted


@pytest.mark.parametrize("seed", [0, 1])
def test_memorising_revisits_do_not_pick_a_weak_penalty(seed: int) -> None:
    """More features than prompts, each prompt with its own residual off the linear trend,
    every prompt reported twice: scored on the revisits too, the α's reward the weaker
    penalty that recalls each prompt's first report; first-seen prompts pick a stronger one."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(160, 256, generator=gen)
    residual = torch.randn(160, generator=gen)
    p = (0.5 + 0.2 * x[:, 0] + 0.15 * residual).clamp(0, 1).double()
    first, second = (torch.bernoulli(p.expand(8, -1), generator=gen).mean(0) for _ in range(2))
    n = torch.full((20,), 8.0, dtype=torch.float64)
    heads = {kind: RidgeHead(256, window=1000, half_life=0) for kind in ("all", "fresh")}
    for kind, head in heads.items():
        for b in range(0, 160, 20):  # first reports: all fresh
            head.observe(x[b : b + 20], first[b : b + 20], n)
        for b in range(0, 160, 20):  # second reports of the same prompts
            fresh = None if kind == "all" else torch.zeros(20, dtype=torch.bool)
            head.observe(x[b : b + 20], second[b : b + 20], n, fresh)
    assert heads["fresh"].alpha > heads["all"].alpha


def test_the_prior_is_worth_what_its_first_seen_errors_say_per_neighbourhood() -> None:
    """Before any prompt comes back, c comes from the first-seen reports: where the prior
    is exact (p̂ near 0.9) it is worth many pseudo-observations, where it is off by about
    0.3 (p̂ near 0.3) few, each near p̂(1 − p̂)/τ² − 1."""
    gen = torch.Generator().manual_seed(3)
    history = PromptHistory(capacity=10_000, half_life=0.0)
    for b in range(40):
        exact = torch.full((16,), 0.9, dtype=torch.float64)
        off = torch.full((16,), 0.3, dtype=torch.float64)
        truth = torch.cat([exact, off + 0.3 * torch.sign(torch.randn(16, generator=gen))])
        truth = truth.clamp(0.0, 1.0)
        prior = torch.cat([exact, off])
        y = torch.bernoulli(truth[:, None].expand(32, 8), generator=gen).mean(1)
        hashes = [f"b{b}-{i}" for i in range(32)]
        history.observe(hashes, y.double(), torch.full((32,), 8.0), prior, None)
    assert math.isnan(history.pseudo_count)  # the empirical count is served
    exact_c, off_c = history.served_counts(torch.tensor([0.9, 0.3], dtype=torch.float64))
    assert exact_c > 32.0
    assert off_c == pytest.approx(0.3 * 0.7 / 0.09 - 1, abs=0.6)


def test_a_history_state_without_the_empirical_count_still_loads() -> None:
    history = PromptHistory(capacity=10, half_life=0.0)
    history.observe(["a"], torch.tensor([0.5]), torch.tensor([4.0]), torch.tensor([0.5]), None)
    old = history.state()
    old["errors"] = old["errors"][:-1]
    del old["eb"]
    fresh = PromptHistory(capacity=10, half_life=0.0)
    fresh.load_state(old)
    assert fresh.counts(["a"])[0].tolist() == [4.0]
    assert fresh.pseudo_count == 8.0  # nothing measured yet: the default c
