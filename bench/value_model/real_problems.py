"""How well does the value model rank real problems it has not tried, inside one benchmark?

    .venv/bin/python bench/value_model/real_problems.py [--configs minilm@4 smollm2@15 ...]
        [--folds 4] [--parts main curve revisit leave_out finetune] [--finetune-folds 2]

Data: ``bench/data/solve_rates_gsm8k_math5_dev.jsonl`` (a copy of
``shared/data/solve-rates/``): 1,534 real GSM8K and MATH level 5 problems, each with the share
of about 40 public LLMs that solved it (ZeroEval's committed greedy answers; origin and
caveats in ``bench/data/solve_rates.md``). That share is the truth p.

Protocol (the issue's; a user's run on their own dataset): for each of ``--folds`` disjoint
folds of 300 problems, the value model learns online from the other problems, streamed once
in batches of 32, each reported with the mean of n = 4 Bernoulli(p) draws; then it scores the
300 it never saw. Headline: **Spearman inside one benchmark** (the mean of GSM8K's and
MATH-5's), because choosing near τ happens inside the dataset a user trains on, where the
benchmark's label is no help. Beside it, on the same problems: the k-rollout estimate
(k = 1…8 draws, averaged over 16 draw seeds, average ranks for ties), the benchmark's mean
(knows the label, nothing else) and the constant mean; MAE and Brier (expected, against a
fresh Bernoulli(p) outcome) too.

A config is ``features[:fit]``. ``features`` is ``backbone@layer`` (``minilm@4``,
``smollm2@15``, ``minilm@last``), several joined by ``+`` (concatenated, each LayerNorm'd
first), optionally ``+surface`` (a few counts of the text). ``fit`` is ``ridge`` (default: the
service's own ``ValueModel`` in head mode, replay ridge, posterior and novelty, fed the cached
features through ``CachedBackbone``), ``krr`` (kernel ridge on the window, RBF on the
normalised features), ``mlp`` (a small MLP trained on the window for 30 epochs) or ``knn``.

Parts (``--parts``): ``main`` (every config), ``curve`` (the learning curve: 256, 1,024 and
all training problems, with ``--default``: MiniLM@4, the service's default), ``revisit``
(every held-out problem then reported once with n = 4, against the raw 4 draws and text-free
Beta priors), ``leave_out`` (train on one benchmark, score the other: ranking, MAE, mean p̂
against the truth, the uncertainty's AUROC), ``finetune`` (full mode: MiniLM cut at block 4
and its head fine-tuned on the whole window, 2 epochs, prompts cut at 256 tokens, against
the head on the same folds; the first ``--finetune-folds`` of the folds, since each costs
many minutes here). Writes ``bench/results/real_problems.json``; a rerun of some configs or
parts replaces just their rows.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import DATA, spearman, write_result
from real_features import check_layer, layer_features
from real_fits import Fit, make_fit
from tqdm import tqdm

DATA_FILE = DATA / "solve_rates_gsm8k_math5_dev.jsonl"
BENCHMARKS = ("gsm8k-test", "math-test-level5")
HELD = 300
BATCH = 32
N_DRAWS = 4
KS = (1, 2, 3, 4, 5, 6, 7, 8)
ROLLOUT_SEEDS = 16
DEFAULT_CONFIG = "minilm@4"
CONFIGS = (
    "minilm@4",
    "smollm2@15",
    "minilm@last",
    "smollm2@last",
    "minilm@2+minilm@4+minilm@6",
    "smollm2@7+smollm2@15+smollm2@23",
    "minilm@4+smollm2@15",
    "minilm@4+surface",
    "minilm@4:krr",
    "minilm@4+smollm2@15:krr",
    "minilm@4:mlp",
    "minilm@4:knn",
)


def load_problems() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA_FILE.read_text().splitlines() if line.strip()]


# The protocol ----------------------------------------------------------------------------


@dataclass
class Fold:
    train: list[int]
    test: list[int]
    draws: dict[int, list[float]]
    """Each problem's 8 Bernoulli(p) outcomes: its reports use the first n = 4."""


def folds(problems: list[dict[str, Any]], count: int) -> list[Fold]:
    order = list(range(len(problems)))
    random.Random(0).shuffle(order)
    out = []
    for f in range(count):
        test = sorted(order[f * HELD : (f + 1) * HELD])
        held = set(test)
        train = [i for i in order if i not in held]
        rng = random.Random(100 + f)
        draws = {
            i: [float(rng.random() < p["solve_rate"]) for _ in range(max(KS))]
            for i, p in enumerate(problems)
        }
        out.append(Fold(train, test, draws))
    return out


def stream(fit: Fit, fold: Fold, train: list[int]) -> None:
    for b in range(0, len(train), BATCH):
        batch = train[b : b + BATCH]
        fit.learn(batch, [statistics.fmean(fold.draws[i][:N_DRAWS]) for i in batch])


def measure(
    predicted: list[float], idx: list[int], problems: list[dict[str, Any]]
) -> dict[str, float]:
    """Spearman (mixed, per benchmark, within = their mean), MAE, expected Brier."""
    truth = [problems[i]["solve_rate"] for i in idx]
    out = {
        "spearman_mixed": spearman(predicted, truth),
        "mae": statistics.fmean(abs(p - t) for p, t in zip(predicted, truth, strict=True)),
        "brier": statistics.fmean(
            (p - t) ** 2 + t * (1 - t) for p, t in zip(predicted, truth, strict=True)
        ),
    }
    within = []
    for bench in BENCHMARKS:
        rows = [k for k, i in enumerate(idx) if problems[i]["benchmark"] == bench]
        rho = spearman([predicted[k] for k in rows], [truth[k] for k in rows])
        out[f"spearman_{bench}"] = rho
        within.append(rho)
    out["spearman_within"] = statistics.fmean(within)
    return out


def averaged(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over draw seeds (NaN-free metrics only)."""
    return {k: statistics.fmean(m[k] for m in per_seed) for k in per_seed[0]}


def rollout_rows(
    problems: list[dict[str, Any]], fold: Fold, idx: list[int], f: int
) -> dict[str, dict[str, float]]:
    """k-rollout estimates of the test problems, each averaged over ROLLOUT_SEEDS draws."""
    out = {}
    for k in KS:
        per_seed = []
        for s in range(ROLLOUT_SEEDS):
            rng = random.Random(10_000 * f + 100 * k + s)
            est = [
                statistics.fmean(float(rng.random() < problems[i]["solve_rate"]) for _ in range(k))
                for i in idx
            ]
            per_seed.append(measure(est, idx, problems))
        out[f"rollouts_k{k}"] = averaged(per_seed)
    return out


def label_means(problems: list[dict[str, Any]], fold: Fold, train: list[int]) -> dict[str, float]:
    """Mean observed reward per benchmark over the training reports."""
    return {
        bench: statistics.fmean(
            statistics.fmean(fold.draws[i][:N_DRAWS])
            for i in train
            if problems[i]["benchmark"] == bench
        )
        for bench in BENCHMARKS
    }


def beta_prior(means: list[float]) -> tuple[float, float]:
    """Method-of-moments Beta(a, b) of p from means of N_DRAWS Bernoulli draws (the draws'
    binomial noise removed from the variance)."""
    mu = statistics.fmean(means)
    var = statistics.pvariance(means)
    var_p = max((var - mu * (1 - mu) / N_DRAWS) / (1 - 1 / N_DRAWS), 1e-4)
    strength = max(mu * (1 - mu) / var_p - 1, 0.1)
    return mu * strength, (1 - mu) * strength


def summarise(per_fold: list[dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    rows = []
    for method in per_fold[0]:
        row: dict[str, Any] = {"method": method, "folds": len(per_fold)}
        for key in per_fold[0][method]:
            values = [fold[method][key] for fold in per_fold]
            finite = all(v == v for v in values)  # a constant predictor's Spearman is NaN
            row[key] = statistics.fmean(values) if finite else math.nan
            row[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 and finite else math.nan
        rows.append(row)
    return rows


def part_main(
    problems: list[dict[str, Any]], fs: list[Fold], configs: list[str]
) -> list[dict[str, Any]]:
    per_fold: list[dict[str, dict[str, float]]] = []
    for f, fold in enumerate(fs):
        out: dict[str, dict[str, float]] = {}
        for config in tqdm(configs, desc=f"fold {f + 1}/{len(fs)}", leave=False):
            fit = make_fit(config, problems, N_DRAWS)
            stream(fit, fold, fold.train)
            out[f"V {config}"] = measure(fit.predict(fold.test)[0], fold.test, problems)
            tqdm.write(f"fold {f + 1} V {config}: {out[f'V {config}']['spearman_within']:.3f}")
        out.update(rollout_rows(problems, fold, fold.test, f))
        means = label_means(problems, fold, fold.train)
        out["benchmark_mean"] = measure(
            [means[problems[i]["benchmark"]] for i in fold.test], fold.test, problems
        )
        overall = statistics.fmean(statistics.fmean(fold.draws[i][:N_DRAWS]) for i in fold.train)
        out["constant_mean"] = measure([overall] * len(fold.test), fold.test, problems)
        per_fold.append(out)
    return summarise(per_fold)


def part_finetune(problems: list[dict[str, Any]], fs: list[Fold]) -> list[dict[str, Any]]:
    """Full mode (the backbone fine-tuned on the window) against the head on the same folds:
    fine-tuning costs minutes a fold here, so it runs on the first ``--finetune-folds``."""
    per_fold = []
    for f, fold in enumerate(fs):
        out = {}
        for config in (DEFAULT_CONFIG, f"{DEFAULT_CONFIG}:finetune"):
            fit = make_fit(config, problems, N_DRAWS)
            stream(fit, fold, fold.train)
            out[f"V {config}"] = measure(fit.predict(fold.test)[0], fold.test, problems)
            tqdm.write(f"fold {f + 1} V {config}: {out[f'V {config}']['spearman_within']:.3f}")
        out.update(rollout_rows(problems, fold, fold.test, f))
        per_fold.append(out)
    return summarise(per_fold)


def part_curve(problems: list[dict[str, Any]], fs: list[Fold], config: str) -> list[dict[str, Any]]:
    per_fold = []
    for fold in fs:
        out = {}
        for size in (256, 1024, len(fold.train)):
            fit = make_fit(config, problems, N_DRAWS)
            stream(fit, fold, fold.train[:size])
            out[f"V {config} trained on {'all' if size == len(fold.train) else size}"] = measure(
                fit.predict(fold.test)[0], fold.test, problems
            )
        per_fold.append(out)
    return summarise(per_fold)


def part_revisit(
    problems: list[dict[str, Any]], fs: list[Fold], config: str
) -> list[dict[str, Any]]:
    """Each held-out problem reported once (the same 4 draws as the raw estimate)."""
    per_fold = []
    for fold in fs:
        fit = make_fit(config, problems, N_DRAWS)
        stream(fit, fold, fold.train)
        stream(fit, fold, fold.test)
        s = {i: sum(fold.draws[i][:N_DRAWS]) for i in fold.test}
        out = {
            f"V {config} +1 group": measure(fit.predict(fold.test)[0], fold.test, problems),
            "raw 4 draws": measure([s[i] / N_DRAWS for i in fold.test], fold.test, problems),
        }
        train_means = [statistics.fmean(fold.draws[i][:N_DRAWS]) for i in fold.train]
        a, b = beta_prior(train_means)
        out["text-free Beta prior +1 group"] = measure(
            [(a + s[i]) / (a + b + N_DRAWS) for i in fold.test], fold.test, problems
        )
        per_bench = {}
        for bench in BENCHMARKS:
            per_bench[bench] = beta_prior(
                [
                    statistics.fmean(fold.draws[i][:N_DRAWS])
                    for i in fold.train
                    if problems[i]["benchmark"] == bench
                ]
            )
        out["per-benchmark Beta prior +1 group"] = measure(
            [
                (per_bench[problems[i]["benchmark"]][0] + s[i])
                / (sum(per_bench[problems[i]["benchmark"]]) + N_DRAWS)
                for i in fold.test
            ],
            fold.test,
            problems,
        )
        per_fold.append(out)
    return summarise(per_fold)


def auroc(positive: list[float], negative: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def part_leave_out(
    problems: list[dict[str, Any]], fs: list[Fold], config: str
) -> list[dict[str, Any]]:
    """Train on one benchmark's training problems; score the other benchmark's test
    problems and the seen benchmark's own test problems."""
    rows = []
    for seen, unseen in (BENCHMARKS, BENCHMARKS[::-1]):
        per_fold = []
        for fold in fs:
            fit = make_fit(config, problems, N_DRAWS)
            stream(fit, fold, [i for i in fold.train if problems[i]["benchmark"] == seen])
            new = [i for i in fold.test if problems[i]["benchmark"] == unseen]
            same = [i for i in fold.test if problems[i]["benchmark"] == seen]
            p_new, sd_new = fit.predict(new)
            _, sd_same = fit.predict(same)
            truth = [problems[i]["solve_rate"] for i in new]
            per_fold.append(
                {
                    "spearman": spearman(p_new, truth),
                    "mae": statistics.fmean(abs(p - t) for p, t in zip(p_new, truth, strict=True)),
                    "mean_predicted": statistics.fmean(p_new),
                    "mean_truth": statistics.fmean(truth),
                    "uncertainty_auroc": auroc(sd_new or [], sd_same or []) if sd_new else math.nan,
                }
            )
        row: dict[str, Any] = {"method": f"V {config}", "seen": seen, "unseen": unseen}
        for key in per_fold[0]:
            row[key] = statistics.fmean(m[key] for m in per_fold)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument(
        "--default", default=DEFAULT_CONFIG, help="config of curve/revisit/leave_out"
    )
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument(
        "--finetune-folds", type=int, default=2, help="folds the finetune part runs on"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["main", "curve", "revisit", "leave_out", "finetune"],
        choices=["main", "curve", "revisit", "leave_out", "finetune"],
    )
    args = parser.parse_args()
    problems = load_problems()
    texts = [p["question"] for p in problems]
    checks = {}
    for name, layer in (("minilm", 4), ("smollm2", 15)):
        checks[f"{name}@{layer}"] = check_layer(name, texts, layer_features(name, texts), layer)
    fs = folds(problems, args.folds)
    parts: dict[str, list[dict[str, Any]]] = {}
    runners = {
        "main": lambda: part_main(problems, fs, args.configs),
        "curve": lambda: part_curve(problems, fs, args.default),
        "revisit": lambda: part_revisit(problems, fs, args.default),
        "leave_out": lambda: part_leave_out(problems, fs, args.default),
        "finetune": lambda: part_finetune(problems, fs[: args.finetune_folds]),
    }
    for part in args.parts:
        parts[part] = runners[part]()
        for row in parts[part]:
            keys = [
                k
                for k in ("spearman_within", "spearman_mixed", "spearman", "mae", "brier")
                if k in row
            ]
            print(f"{part:<9} {row['method']:<44} " + " ".join(f"{k}={row[k]:.3f}" for k in keys))
    path = DATA_FILE.parent.parent / "results" / "real_problems.json"
    saved = json.loads(path.read_text()) if path.exists() else {"meta": {}, "rows": {}}
    rows = dict(saved["rows"]) if isinstance(saved["rows"], dict) else {}
    for part, new in parts.items():  # a rerun of some configs replaces just their rows
        names = {(r["method"], r.get("seen")) for r in new}
        kept = [r for r in rows.get(part, []) if (r["method"], r.get("seen")) not in names]
        rows[part] = kept + new
    meta = {
        "data": str(DATA_FILE.relative_to(DATA_FILE.parent.parent.parent)),
        "problems": len(problems),
        "protocol": {
            "folds": args.folds,
            "held_out": HELD,
            "batch": BATCH,
            "n": N_DRAWS,
            "rollout_seeds": ROLLOUT_SEEDS,
            "passes": 1,
        },
        "default": args.default,
        "feature_check_max_abs_diff": checks,
    }
    write_result("real_problems", meta, rows)  # type: ignore[arg-type]
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
