"""Does the value model know what it does not know? Leave one task family out.

    .venv/bin/python bench/value_model/cross_family.py [--families chain_sum leg_counting ...]
        [--backbones smollm2 minilm] [--splits 3]

Reads the 32-sample ground truth of each family (bench/value_model/ground_truth.py --name
FAMILY). For each family F left out and each split, with the service's default value model
(head mode, ridge on the replay, the backbone's default layer):
1. the model learns online, as PCL would, from 75 % of every *other* family's prompts (two
   passes in shuffled batches of 16, each report the mean of 4 real outcomes);
2. it scores the 25 % it did not see of the seen families (**seen families**, the mixed case)
   and every prompt of F (**unseen family**): Spearman with the truth, MAE, and whether the
   uncertainty flags F (AUROC of the score's sd, and of the ridge's novelty, unseen family
   against seen families' unseen prompts);
3. then 16 and then 64 more of F's prompts are reported (once each, mean of 4 outcomes) and
   F's remaining prompts are scored again: how fast the model adapts to a new family.
Truth: each prompt's outcomes other than the 8 the reports draw from. Writes
bench/results/cross_family.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import load_ground_truth, spearman, write_result
from prediction_accuracy import split_outcomes
from tqdm import tqdm

from sweetspot_service.backbone import Backbone
from sweetspot_service.models import default_feature_layer
from sweetspot_service.value_model import EmbeddingCache, ValueModel

STAGES = (0, 16, 64)


def auroc(positive: list[float], negative: list[float]) -> float | None:
    """P(a positive scores above a negative), ties counting half; None if a side is empty."""
    if not positive or not negative:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def metrics(model: ValueModel, prompts: list[str], truth: list[float]) -> dict[str, Any]:
    scored, _ = model.score(prompts)
    predicted = [s.p for s in scored]
    return {
        "spearman": spearman(predicted, truth),
        "mae": statistics.fmean(abs(p - t) for p, t in zip(predicted, truth, strict=True)),
        "mean_predicted": statistics.fmean(predicted),
        "mean_truth": statistics.fmean(truth),
        "sd": [s.sd for s in scored],
    }


def report(
    model: ValueModel,
    rows: list[dict[str, Any]],
    observed: dict[str, list[float]],
    rng: random.Random,
    batch: int,
) -> None:
    for b in range(0, len(rows), batch):
        chunk = rows[b : b + batch]
        targets = [statistics.fmean(rng.sample(observed[r["id"]], 4)) for r in chunk]
        model.update([r["prompt"] for r in chunk], targets, counts=[4] * len(chunk))


def run_one(
    backbone: Backbone,
    cache: EmbeddingCache,
    families: dict[str, list[dict[str, Any]]],
    left_out: str,
    split: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    rng = random.Random(split * 7919 + sum(map(ord, left_out)))
    observed, truth = {}, {}
    for rows in families.values():
        for r in rows:
            observed[r["id"]], rest = split_outcomes(r, rng)
            truth[r["id"]] = statistics.fmean(rest)
    train, seen_test = [], []
    for name, rows in families.items():
        if name == left_out:
            continue
        shuffled = rows[:]
        rng.shuffle(shuffled)
        cut = int(0.75 * len(shuffled))
        train += shuffled[:cut]
        seen_test += shuffled[cut:]
    model = ValueModel(backbone, embedding_cache=cache, seed=split)
    for _ in range(args.epochs):
        rng.shuffle(train)
        report(model, train, observed, rng, args.batch)
    new = families[left_out][:]
    rng.shuffle(new)
    out: dict[str, Any] = {"left_out": left_out, "split": split}
    seen = metrics(model, [r["prompt"] for r in seen_test], [truth[r["id"]] for r in seen_test])
    unseen = metrics(model, [r["prompt"] for r in new], [truth[r["id"]] for r in new])
    features = model._normed([r["prompt"] for r in seen_test + new])
    assert model.ridge is not None
    novelty = model.ridge.novelty(features).tolist()
    out["seen_families"] = {k: v for k, v in seen.items() if k != "sd"}
    out["uncertainty_auroc"] = auroc(unseen["sd"], seen["sd"])
    out["novelty_auroc"] = auroc(novelty[len(seen_test) :], novelty[: len(seen_test)])
    out["mean_sd_seen"] = statistics.fmean(seen["sd"])
    out["mean_sd_unseen"] = statistics.fmean(unseen["sd"])
    reported = 0
    for stage in STAGES:
        if stage > reported:
            report(model, new[reported:stage], observed, rng, args.batch)
            reported = stage
        rest = new[stage:]
        scored = metrics(model, [r["prompt"] for r in rest], [truth[r["id"]] for r in rest])
        out[f"unseen_family_after_{stage}"] = {k: v for k, v in scored.items() if k != "sd"}
    return out


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for family in dict.fromkeys(r["left_out"] for r in runs):
        mine = [r for r in runs if r["left_out"] == family]

        def mean(get: Any, mine: list[dict[str, Any]] = mine) -> float | None:
            values = [v for v in (get(r) for r in mine) if v is not None]
            return statistics.fmean(values) if values else None

        row: dict[str, Any] = {
            "left_out": family,
            "splits": len(mine),
            "seen_spearman": mean(lambda r: r["seen_families"]["spearman"]),
            "seen_mae": mean(lambda r: r["seen_families"]["mae"]),
            "uncertainty_auroc": mean(lambda r: r["uncertainty_auroc"]),
            "novelty_auroc": mean(lambda r: r["novelty_auroc"]),
            "mean_sd_seen": mean(lambda r: r["mean_sd_seen"]),
            "mean_sd_unseen": mean(lambda r: r["mean_sd_unseen"]),
        }
        for stage in STAGES:
            key = f"unseen_family_after_{stage}"
            row[f"unseen_spearman_{stage}"] = mean(lambda r, k=key: r[k]["spearman"])
            row[f"unseen_mae_{stage}"] = mean(lambda r, k=key: r[k]["mae"])
            row[f"unseen_mean_predicted_{stage}"] = mean(lambda r, k=key: r[k]["mean_predicted"])
            row[f"unseen_mean_truth_{stage}"] = mean(lambda r, k=key: r[k]["mean_truth"])
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--families",
        nargs="+",
        default=["chain_sum", "leg_counting", "spell_backward", "letter_counting"],
    )
    parser.add_argument("--backbones", nargs="+", default=["smollm2", "minilm"])
    parser.add_argument("--per-family", type=int, default=256, help="prompts used per family")
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    families = {}
    for name in args.families:
        rows = load_ground_truth(name)
        random.Random(0).shuffle(rows)
        families[name] = rows[: args.per_family]
    table: list[dict[str, Any]] = []
    for backbone_name in args.backbones:
        backbone = Backbone.load(backbone_name, layer=default_feature_layer(backbone_name))
        cache = EmbeddingCache(100_000)
        runs = [
            run_one(backbone, cache, families, left_out, split, args)
            for left_out in tqdm(args.families, desc=f"{backbone_name}: family left out")
            for split in range(args.splits)
        ]
        for row in summarise(runs):
            table.append({"backbone": backbone_name, **row})
    header = f"{'backbone':<8} {'left out':<16} {'seen ρ':>7} {'unseen ρ 0/16/64':>18} "
    print(header + f"{'MAE 0/64':>12} {'AUROC sd':>9} {'AUROC nov':>9}")
    nan = float("nan")
    for r in table:
        rho = "/".join(f"{r[f'unseen_spearman_{s}'] or nan:.2f}" for s in STAGES)
        print(
            f"{r['backbone']:<8} {r['left_out']:<16} {r['seen_spearman'] or nan:>7.2f} "
            f"{rho:>18} {r['unseen_mae_0']:>5.3f}/{r['unseen_mae_64']:.3f} "
            f"{r['uncertainty_auroc'] or nan:>9.2f} {r['novelty_auroc'] or nan:>9.2f}"
        )
    meta = {"settings": vars(args), "stages": list(STAGES)}
    path = write_result("cross_family", meta, table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
