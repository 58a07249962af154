"""How well does the value model know p(x)? Against the k-rollout estimator, on real rollouts.

    .venv/bin/python bench/value_model/prediction_accuracy.py
        [--configs smollm2/head minilm/head ...] [--epochs 2] [--splits 5]

A config is ``backbone/mode[:fit[:layer]]``: ``smollm2/head`` is the service default (ridge
on the packaged default layer), ``smollm2/head:sgd:last`` the one-step AdamW head on the last
hidden state (the default before the replay), ``smollm2/head:ridge:7`` ridge on block 7,
``minilm/full`` the fine-tuned backbone.

Reads the ground-truth table (bench/value_model/ground_truth.py: 32 real rollouts per prompt). Each
prompt's 32 outcomes are split at random into 8 "observed" and 24 "truth" outcomes, so no
method is scored against outcomes it saw:
- the value model trains online on a stream of (training prompt, mean of 4 observed
  outcomes) in batches of ``--batch``, as PCL does, then predicts the held-out prompts;
- the k-rollout estimator averages k of a held-out prompt's observed outcomes (k = 1…8).
Both are scored against the truth outcomes: MAE, Brier score (mean squared error against a
fresh outcome), Spearman correlation, each with its standard deviation over splits.
Then every held-out prompt is reported once with the mean of the same 4 observed outcomes
the k=4 estimator averages, and scored again: ``… +1 group`` rows are the service's
posterior (the prior blended with that group), to set against ``rollouts_k4``.
Writes bench/results/prediction_accuracy.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import RESULTS, load_ground_truth, spearman, write_result
from tqdm import tqdm

from sweetspot_service.backbone import Backbone
from sweetspot_service.models import default_feature_layer
from sweetspot_service.value_model import EmbeddingCache, ValueModel

KS = [1, 2, 3, 4, 5, 6, 7, 8]
METRICS = ("mae", "brier", "spearman")


def split_outcomes(row: dict[str, Any], rng: random.Random) -> tuple[list[float], list[float]]:
    """A prompt's real outcomes, shuffled: 8 observed ones and the rest (the truth)."""
    wins = int(row["successes"])
    outcomes = [1.0] * wins + [0.0] * (int(row["samples"]) - wins)
    rng.shuffle(outcomes)
    return outcomes[:8], outcomes[8:]


def scores(
    predicted: list[float], outcomes: list[list[float]], truth: list[float]
) -> dict[str, float]:
    """MAE vs truth p, Brier vs the held-out outcomes, Spearman vs truth."""
    brier = statistics.fmean(
        statistics.fmean((p - y) ** 2 for y in ys)
        for p, ys in zip(predicted, outcomes, strict=True)
    )
    return {
        "mae": statistics.fmean(abs(p - t) for p, t in zip(predicted, truth, strict=True)),
        "brier": brier,
        "spearman": spearman(predicted, truth),
    }


def run_split(
    model: ValueModel,
    rows: list[dict[str, Any]],
    held: set[int],
    seed: int,
    args: argparse.Namespace,
) -> tuple[dict[str, dict[str, float]], float]:
    rng = random.Random(seed)
    observed, truth, fresh = {}, {}, {}
    for i, row in enumerate(rows):
        observed[i], fresh[i] = split_outcomes(row, rng)
        truth[i] = statistics.fmean(fresh[i])
    train = [i for i in range(len(rows)) if i not in held]
    test = sorted(held)
    start = time.perf_counter()
    for _ in range(args.epochs):
        rng.shuffle(train)
        for b in range(0, len(train), args.batch):
            batch = train[b : b + args.batch]
            targets = [statistics.fmean(rng.sample(observed[i], 4)) for i in batch]
            model.update([rows[i]["prompt"] for i in batch], targets, counts=[4] * len(batch))
    train_s = time.perf_counter() - start
    predicted, _ = model.predict([rows[i]["prompt"] for i in test])
    t_truth = [truth[i] for i in test]
    t_fresh = [fresh[i] for i in test]
    out = {"value_model": scores(predicted, t_fresh, t_truth)}
    for k in KS:
        estimate = [statistics.fmean(observed[i][:k]) for i in test]
        out[f"rollouts_k{k}"] = scores(estimate, t_fresh, t_truth)
    out["constant_mean"] = scores(
        [statistics.fmean(statistics.fmean(observed[i]) for i in train)] * len(test),
        t_fresh,
        t_truth,
    )
    for b in range(0, len(test), args.batch):  # one group of 4 per held-out prompt
        batch = test[b : b + args.batch]
        targets = [statistics.fmean(observed[i][:4]) for i in batch]
        model.update([rows[i]["prompt"] for i in batch], targets, counts=[4] * len(batch))
    posterior, _ = model.predict([rows[i]["prompt"] for i in test])
    out["value_model_posterior"] = scores(posterior, t_fresh, t_truth)
    return out, train_s


def parse_config(text: str) -> tuple[str, str, str, int | None]:
    """``backbone/mode[:fit[:layer]]`` -> (backbone, mode, fit, layer); layer None = last."""
    backbone, _, rest = text.partition("/")
    mode, fit, layer = ([*rest.split(":"), "", ""])[:3]
    if mode not in ("head", "full") or fit not in ("", "ridge", "sgd"):
        raise SystemExit(f"config {text!r}: expected backbone/head|full[:ridge|sgd[:layer]]")
    if mode == "full":
        return backbone, mode, "sgd", None
    chosen = default_feature_layer(backbone) if layer == "" else None
    return backbone, mode, fit or "ridge", (int(layer) if layer not in ("", "last") else chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[
            "smollm2/head",
            "smollm2/head:ridge:7",
            "smollm2/head:ridge:23",
            "smollm2/head:ridge:last",
            "smollm2/head:sgd:last",
            "smollm2/full",
            "minilm/head",
            "minilm/head:ridge:3",
            "minilm/head:ridge:5",
            "minilm/head:ridge:last",
            "minilm/head:sgd:last",
            "minilm/full",
        ],
        help="backbone/mode[:fit[:layer]] (see the module docstring)",
    )
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--backbone-lr", type=float, default=1e-5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--holdout", type=int, default=128)
    parser.add_argument("--splits", type=int, default=5, help="random splits to average")
    parser.add_argument("--plot-only", action="store_true", help="redraw from the JSON")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the saved rows of value models not run now (each row says its splits and "
        "when it was measured)",
    )
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads((RESULTS / "prediction_accuracy.json").read_text())["rows"]
        plot(saved, RESULTS / "prediction_accuracy.png")
        return

    rows = load_ground_truth()
    results: list[dict[str, Any]] = []
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    for config in tqdm(args.configs, desc="value models"):
        backbone_name, mode, fit, layer = parse_config(config)
        backbone = Backbone.load(backbone_name, layer=layer)
        cache = EmbeddingCache(100_000)  # the frozen backbone's features, shared by splits
        per_split = []
        train_seconds = []
        for split in range(args.splits):
            held = set(random.Random(1000 + split).sample(range(len(rows)), args.holdout))
            model = ValueModel(
                Backbone.load(backbone_name) if mode == "full" and split else backbone,
                train_mode=mode,  # type: ignore[arg-type]
                head_fit=fit,  # type: ignore[arg-type]
                head_lr=args.head_lr,
                backbone_lr=args.backbone_lr,
                embedding_cache=cache if mode == "head" else None,
                seed=split,
            )
            out, seconds = run_split(model, rows, held, seed=split, args=args)
            per_split.append(out)
            train_seconds.append(seconds)
        for method in per_split[0]:
            if not method.startswith("value_model") and method in {r["method"] for r in results}:
                continue  # estimators do not depend on the backbone
            label = {
                "value_model": f"V {config}",
                "value_model_posterior": f"V {config} +1 group",
            }.get(method, method)
            row: dict[str, Any] = {"method": label}
            for key in METRICS:
                values = [s[method][key] for s in per_split]
                row[key] = statistics.fmean(values)
                finite = all(v == v for v in values)  # Spearman of a constant is NaN
                row[f"{key}_sd"] = (
                    statistics.stdev(values) if len(values) > 1 and finite else float("nan")
                )
            row["train_seconds"] = (
                statistics.fmean(train_seconds) if method == "value_model" else None
            )
            row["splits"] = args.splits
            row["measured_at"] = measured_at
            results.append(row)
    if args.merge:
        results += kept_rows({r["method"] for r in results}, args)
    print(f"{'method':<34} {'MAE':>7} {'Brier':>7} {'Spearman':>9} {'± sd':>6}")
    for r in results:
        print(
            f"{r['method']:<34} {r['mae']:>7.4f} {r['brier']:>7.4f} {r['spearman']:>9.3f} "
            f"{r.get('spearman_sd', float('nan')):>6.3f}"
        )
    meta = {
        "ground_truth": "bench/data/ground_truth_chain_sum.jsonl",
        "settings": vars(args),
        "prompts": len(rows),
    }
    write_result("prediction_accuracy", meta, results)
    plot(results, RESULTS / "prediction_accuracy.png")
    print(f"wrote {RESULTS / 'prediction_accuracy.json'} and .png")


def kept_rows(fresh: set[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Saved value-model rows this run did not measure, for ``--merge``: same protocol, so
    only the number of splits may differ (each row keeps its own)."""
    path = RESULTS / "prediction_accuracy.json"
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    same = ("epochs", "batch", "holdout")
    if any(saved["meta"]["settings"][k] != vars(args)[k] for k in same):
        raise SystemExit(f"{path} was measured with other {same}: drop --merge")
    old_splits = saved["meta"]["settings"]["splits"]
    kept = []
    for r in saved["rows"]:
        if r["method"].startswith("V ") and r["method"] not in fresh:
            kept.append(
                {
                    **r,
                    "splits": r.get("splits", old_splits),
                    "measured_at": r.get("measured_at", saved["meta"]["measured_at"]),
                }
            )
    return kept


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    estimators = [r for r in results if r["method"].startswith("rollouts_k")]
    ks = [int(r["method"].removeprefix("rollouts_k")) for r in estimators]
    for ax, key, label in ((axes[0], "mae", "MAE vs true p"), (axes[1], "spearman", "Spearman ρ")):
        ax.plot(
            ks, [r[key] for r in estimators], marker="o", color="black", label="k-rollout estimate"
        )
        models = [  # the layer sweep stays in the table
            r for r in results if r["method"].startswith("V ") and ":ridge:" not in r["method"]
        ]
        colors = plt.get_cmap("tab10").colors
        for r, color in zip(models, colors, strict=False):
            style = ":" if "sgd" in r["method"] else "--" if "+1 group" in r["method"] else "-"
            ax.axhline(r[key], linestyle=style, color=color, label=r["method"])
        constant = next((r for r in results if r["method"] == "constant_mean"), None)
        if constant is not None and key == "mae":
            ax.axhline(constant[key], linestyle=":", color="gray", label="constant (pool mean)")
        ax.set(xlabel="rollouts per prompt (k)", ylabel=label, title=f"Held-out {label}")
        ax.set_xticks(ks)
        ax.legend(fontsize=8)
    fig.suptitle("Value model vs k-rollout estimator (SmolLM2-135M on chain_sum)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
