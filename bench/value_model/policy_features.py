"""The policy's own hidden states as the value model's features, against the prompt text: how
well each ranks prompts never reported, and what the prefill costs in a training step.

    .venv/bin/python bench/value_model/policy_features.py [--splits 5] [--layers 20 15]
        [--steps 3] [--engine transformers] [--threads 0] [--skip-cost] [--limit N]

Accuracy (the protocol of bench/value_model/prediction_accuracy.py, on its ground-truth table: 512
chain_sum prompts with 32 real SmolLM2-135M rollouts each). Per split, each prompt's 32
outcomes are shuffled into 8 observed ones and 24 truth ones; ``--holdout`` prompts are held
out; the value model learns online from the others (``--epochs`` passes in batches of
``--batch``, each a mean of 4 observed outcomes), then ranks the held-out prompts; Spearman
(average ranks for ties), MAE and Brier against the truth, beside the k-rollout estimates
(k = 1…8 of the observed outcomes) and the constant training mean. Then each held-out prompt
is reported once with 4 observed outcomes and scored again (``+1 group``).
- ``text``: the service's default value model (the SmolLM2 backbone's block 15, last token
  of the raw prompt text, ridge head).
- ``policy block L``: a feature run (``ValueModel.for_features``, the same ridge head) fed
  the vectors ``sweetspot-train --value-features policy`` sends: the SmolLM2 policy's prefill
  of the chat-formatted prompt, mean over its tokens of ``hidden_states[L]``
  (``sweetspot_trainer.prefill.PolicyPrefill``).
The policy here is the untrained SmolLM2-135M-Instruct, whose rollouts made the truth: the
same weights as the text backbone, so the two differ only in layer, pooling and chat
template. What the policy's features add as it trains away from its start, or with a policy
larger than this machine runs, is not measured here.

Cost: the bundled trainer itself (``sweetspot_trainer.train.run``, PCL, its default m = 4,
n = 8, k = 4, 64 new tokens, an embedded service; ``--engine``, transformers by default: vLLM's
start on a CPU would double the run) for ``--steps`` steps with
``--value-features text`` and with ``policy``; its own per-step records give the prefill's
seconds (``time_prefill``, inside ``time_select``) and its share of the step
(``prefill_share``); the first step (warm-up) is left out of the means.

Writes bench/results/policy_features.json.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import load_ground_truth, write_result
from prediction_accuracy import KS, METRICS, scores, split_outcomes

from sweetspot_service.backbone import Backbone
from sweetspot_service.models import default_feature_layer
from sweetspot_service.value_model import EmbeddingCache, ValueModel
from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.prefill import PolicyPrefill
from sweetspot_trainer.tasks import Problem
from sweetspot_trainer.train import load_policy, run

TIMES = ("time_select", "time_prefill", "time_generate", "time_update", "time_step")


def learn(
    model: ValueModel, rows: list[dict[str, Any]], idx: list[int], targets: list[float], x: Any
) -> None:
    prompts = [rows[i]["prompt"] for i in idx]
    vectors = None if x is None else x[idx]
    model.update(prompts, targets, counts=[4] * len(idx), features=vectors)


def predict(model: ValueModel, rows: list[dict[str, Any]], idx: list[int], x: Any) -> list[float]:
    scored, _ = model.score([rows[i]["prompt"] for i in idx], None if x is None else x[idx])
    return [s.p for s in scored]


def run_split(
    model: ValueModel,
    x: Tensor | None,
    rows: list[dict[str, Any]],
    held: set[int],
    seed: int,
    args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    """One split's scores by method; ``x`` the vectors of a feature run ([N, W]) or None."""
    rng = random.Random(seed)
    observed, fresh = {}, {}
    for i, row in enumerate(rows):
        observed[i], fresh[i] = split_outcomes(row, rng)
    train = [i for i in range(len(rows)) if i not in held]
    test = sorted(held)
    for _ in range(args.epochs):
        rng.shuffle(train)
        for b in range(0, len(train), args.batch):
            batch = train[b : b + args.batch]
            targets = [statistics.fmean(rng.sample(observed[i], 4)) for i in batch]
            learn(model, rows, batch, targets, x)
    truth = [statistics.fmean(fresh[i]) for i in test]
    outcomes = [fresh[i] for i in test]
    out = {"value_model": scores(predict(model, rows, test, x), outcomes, truth)}
    for k in KS:
        out[f"rollouts_k{k}"] = scores(
            [statistics.fmean(observed[i][:k]) for i in test], outcomes, truth
        )
    mean = statistics.fmean(statistics.fmean(observed[i]) for i in train)
    out["constant_mean"] = scores([mean] * len(test), outcomes, truth)
    for b in range(0, len(test), args.batch):  # one group of 4 per held-out prompt
        batch = test[b : b + args.batch]
        learn(model, rows, batch, [statistics.fmean(observed[i][:4]) for i in batch], x)
    out["value_model_posterior"] = scores(predict(model, rows, test, x), outcomes, truth)
    return out


def summarise(label: str, per_split: list[dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """Mean and sd over splits of each method; the value model's rows named by ``label``."""
    rows = []
    for method in per_split[0]:
        name = {"value_model": label, "value_model_posterior": f"{label} +1 group"}.get(
            method, method
        )
        row: dict[str, Any] = {"method": name, "splits": len(per_split)}
        for key in METRICS:
            values = [s[method][key] for s in per_split]
            row[key] = statistics.fmean(values)
            finite = all(v == v for v in values)  # Spearman of a constant is NaN
            row[f"{key}_sd"] = (
                statistics.stdev(values) if len(values) > 1 and finite else float("nan")
            )
        rows.append(row)
    return rows


def accuracy(rows: list[dict[str, Any]], args: argparse.Namespace) -> tuple[list, dict]:
    """The text arm and one policy arm per ``--layers``, over ``--splits`` splits."""
    helds = [
        set(random.Random(1000 + s).sample(range(len(rows)), args.holdout))
        for s in range(args.splits)
    ]
    results: list[dict[str, Any]] = []
    cost: dict[str, Any] = {}

    backbone = Backbone.load("smollm2", layer=default_feature_layer("smollm2"))
    cache = EmbeddingCache(100_000)  # the frozen backbone's features, shared by the splits
    per_split = [
        run_split(ValueModel(backbone, embedding_cache=cache, seed=s), None, rows, held, s, args)
        for s, held in enumerate(helds)
    ]
    results += summarise(f"V text (smollm2 block {backbone.layer}, last token)", per_split)
    del backbone

    policy, tokenizer = load_policy("smollm2", "cpu")
    problems = [Problem(r["id"], r["prompt"], r["answer"], r["difficulty"]) for r in rows]
    seen = {r["method"] for r in results}
    for layer in args.layers:
        prefill = PolicyPrefill(policy, tokenizer, layer=layer)
        started = time.perf_counter()
        x = prefill(problems)  # [N, 576]
        seconds = time.perf_counter() - started
        cost[f"block_{prefill.layer}_prefill_seconds_per_prompt"] = seconds / len(problems)
        per_split = [
            run_split(ValueModel.for_features(prefill.width, seed=s), x, rows, held, s, args)
            for s, held in enumerate(helds)
        ]
        label = f"V policy (smollm2 block {prefill.layer}, mean over prompt tokens)"
        results += [r for r in summarise(label, per_split) if r["method"] not in seen]
    # the cost of one step's prefill at the trainer's default k·m = 16 candidates
    prefill = PolicyPrefill(policy, tokenizer)
    candidates = random.Random(0).sample(problems, 16)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        prefill(candidates)
        timings.append(time.perf_counter() - started)
    cost["prefill_16_candidates_seconds_median"] = statistics.median(timings)
    return results, cost


def trainer_cost(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per-step times of the bundled trainer with text and with policy features."""
    rows = []
    for arm in ("text", "policy"):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(
                selection="pcl",
                value_features=arm,
                service_run=f"bench-{arm}",
                steps=args.steps,
                engine=args.engine,
                output_dir=Path(tmp),
                progress=False,
                plot=False,
            )
            records = run(cfg)
        kept = records[1:] or records  # the first step warms up
        row: dict[str, Any] = {
            "value_features": arm,
            "engine": records[0]["engine"],
            "steps_averaged": len(kept),
            "m": cfg.m,
            "n": cfg.n,
            "k": cfg.k,
            "max_new_tokens": cfg.max_new_tokens,
        }
        for key in TIMES:
            values = [r[key] for r in kept if r.get(key) is not None]
            row[key] = statistics.fmean(values) if values else None
        shares = [r["prefill_share"] for r in kept if r.get("prefill_share") is not None]
        row["prefill_share"] = statistics.fmean(shares) if shares else None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[20, 15])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--holdout", type=int, default=128)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="trainer steps per arm (cost)")
    parser.add_argument(
        "--engine", default="transformers", choices=["auto", "vllm", "transformers"]
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads of this process (0: torch's default); on a CPU shared with other "
        "work, 1 avoids the threads waiting on each other",
    )
    parser.add_argument("--skip-cost", action="store_true", help="accuracy only")
    parser.add_argument("--limit", type=int, default=0, help="first N prompts (a quick check)")
    parser.add_argument("--output", default="policy_features", help="results file name")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = load_ground_truth()
    if args.limit:
        rows = rows[: args.limit]
    load = {"load_average_start": os.getloadavg()[0]}
    results, cost = accuracy(rows, args)
    steps = [] if args.skip_cost else trainer_cost(args)
    load["load_average_end"] = os.getloadavg()[0]
    print(f"{'method':<58} {'MAE':>7} {'Brier':>7} {'Spearman':>9} {'± sd':>6}")
    for r in results:
        print(
            f"{r['method']:<58} {r['mae']:>7.4f} {r['brier']:>7.4f} {r['spearman']:>9.3f} "
            f"{r['spearman_sd']:>6.3f}"
        )
    print(cost)
    for r in steps:
        print(r)
    meta = {
        "ground_truth": "bench/data/ground_truth_chain_sum.jsonl",
        "prompts": len(rows),
        "settings": vars(args),
        "policy": "smollm2 (SmolLM2-135M-Instruct, float32, CPU)",
        "prefill_cost": cost,
        "trainer_steps": steps,
        "cpu_threads": torch.get_num_threads(),
        **load,
    }
    print(f"wrote {write_result(args.output, meta, results)}")


if __name__ == "__main__":
    main()
