"""Time to find m intermediate prompts among k·m candidates: PCL against rollout filters.

    .venv/bin/python bench/value_model/identification_speed.py [--m 16] [--k 4] [--rounds 4]
        [--value-models smollm2:full smollm2:head minilm:full minilm:head]

Same policy (SmolLM2-135M, the one the ground truth was measured with), same machine,
same run. For each value-model choice (backbone:mode) a real ``sweetspot-serve`` process
learns the value model online through ``/v1/update`` from the training part of the
ground-truth pool (the same reports for every choice: the mean of 4 of each prompt's real
outcomes, as PCL would observe). Then, for each round, k·m held-out candidates go to
- ``pcl <backbone>/<mode>``: one ``/v1/select`` call through HTTP per value model, on
  candidates it has never seen (no cache helps); its ranking
  quality on all held-out candidates (Spearman of p̂ and the ground-truth p) is measured
  here too, after the timing;
- ``rollout_screen`` (SPEED-style): 3 real rollouts each on the rollout engine, estimate,
  keep the m nearest τ;
- ``dynamic_sampling`` (DAPO): n real rollouts per candidate, in batches of m, until m
  groups have non-zero reward variance;
- ``uniform``: the first m (the no-cost reference).
Quality of the chosen prompts comes from the ground truth: share with true p in
[0.2, 0.8], mean true p, and the expected effective ratio 1 − p^n − (1 − p)^n.
Writes bench/results/identification_speed.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import RESULTS, load_ground_truth, spearman, write_result

from sweetspot_client import SweetspotClient, select_nearest
from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.service import embedded_service
from sweetspot_trainer.tasks import Problem, make_task
from sweetspot_trainer.train import load_policy, make_engine, roll_out


def quality(truth: list[float], n: int) -> dict[str, float]:
    return {
        "share_p_in_0.2_0.8": statistics.fmean(0.2 <= p <= 0.8 for p in truth),
        "mean_true_p": statistics.fmean(truth),
        "expected_effective_ratio": statistics.fmean(1 - p**n - (1 - p) ** n for p in truth),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--holdout", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="value-model training passes")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--value-models",
        nargs="+",
        default=["smollm2:full", "smollm2:head", "minilm:full", "minilm:head"],
        help="backbone:mode of each value model to time",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = load_ground_truth()
    task = make_task("chain_sum", seed=0, size=len(rows))
    problems: dict[str, Problem] = {p.id: p for p in task.problems}
    assert all(r["id"] in problems for r in rows), "ground truth was made with another task"
    rng = random.Random(args.seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    held, train = order[: args.holdout], order[args.holdout :]
    truth = {r["prompt"]: r["p"] for r in rows}
    rounds = [
        [rows[i]["prompt"] for i in held[r * args.k * args.m :][: args.k * args.m]]
        for r in range(args.rounds)
    ]
    reports = training_reports(rows, train, args.epochs, args.m, args.seed)

    times: dict[str, list[float]] = {}
    rollouts: dict[str, list[int]] = {}
    chosen: dict[str, list[float]] = {"uniform": [truth[p] for c in rounds for p in c[: args.m]]}
    extra: dict[str, dict[str, Any]] = {}
    for choice in args.value_models:
        backbone, _, mode = choice.partition(":")
        name = f"pcl {backbone}/{mode}"
        log = RESULTS / f"identification_speed.{backbone}-{mode}.service.log"
        with (
            embedded_service(
                backbone=backbone, log_path=log, seed=args.seed, extra_args=["--train-mode", mode]
            ) as url,
            SweetspotClient(base_url=url, timeout=600) as client,
        ):
            start = time.perf_counter()
            for prompts, rewards in reports:
                client.update(prompts, rewards)
            train_seconds = time.perf_counter() - start
            times[name], rollouts[name], chosen[name] = [], [], []
            for round_, cands in enumerate(rounds):
                start = time.perf_counter()
                answer = client.select(cands, args.m, seed=round_)
                times[name].append(time.perf_counter() - start)
                rollouts[name].append(0)
                chosen[name] += [truth[cands[i]] for i in answer.indices]
            candidates = [p for c in rounds for p in c]
            predicted = client.score(candidates).scores
        rank = spearman(predicted, [truth[p] for p in candidates])
        extra[name] = {"value_model_training_seconds": train_seconds, "spearman_here": rank}
        print(f"{name}: trained in {train_seconds:.0f} s, held-out Spearman {rank}", flush=True)

    cfg = TrainConfig(output_dir=Path("runs/identification"), selection="uniform")
    policy, tokenizer = load_policy(cfg.model, "cpu")
    engine = make_engine(cfg, policy, tokenizer)
    by_prompt = {r["prompt"]: problems[r["id"]] for r in rows}

    def roll(prompts: list[str], n: int) -> list[list[float]]:
        _, rewards = roll_out(
            engine,
            task,
            [by_prompt[p] for p in prompts],
            n=n,
            max_new_tokens=args.max_new_tokens,
            temperature=cfg.temperature,
        )
        return rewards

    for name in ("rollout_screen", "dynamic_sampling"):
        times[name], rollouts[name], chosen[name] = [], [], []
    try:
        engine.generate(["warm up"], n=2, max_new_tokens=4, temperature=1.0)
        for round_, cands in enumerate(rounds):
            start = time.perf_counter()
            estimates = [statistics.fmean(r) for r in roll(cands, 3)]
            kept = select_nearest(estimates, args.m, rng=random.Random(round_))
            times["rollout_screen"].append(time.perf_counter() - start)
            rollouts["rollout_screen"].append(3 * len(cands))
            chosen["rollout_screen"] += [truth[cands[i]] for i in kept]

            start = time.perf_counter()
            effective: list[str] = []
            spent = 0
            for b in range(0, len(cands), args.m):
                batch = cands[b : b + args.m]
                spent += args.n * len(batch)
                effective += [
                    p for p, r in zip(batch, roll(batch, args.n), strict=True) if max(r) > min(r)
                ]
                if len(effective) >= args.m:
                    break
            times["dynamic_sampling"].append(time.perf_counter() - start)
            rollouts["dynamic_sampling"].append(spent)
            chosen["dynamic_sampling"] += [truth[p] for p in effective[: args.m]]
            print(
                f"round {round_ + 1}: screen {times['rollout_screen'][-1]:.1f}s, "
                f"dynamic sampling {times['dynamic_sampling'][-1]:.1f}s",
                flush=True,
            )
    finally:
        engine.close()

    screen_time = statistics.fmean(times["rollout_screen"])
    result_rows: list[dict[str, Any]] = []
    for strategy in (*times, "uniform"):
        t = statistics.fmean(times[strategy]) if strategy in times else 0.0
        result_rows.append(
            {
                "strategy": strategy,
                "seconds_per_selection": t,
                "rollouts_per_selection": statistics.fmean(rollouts.get(strategy, [0])),
                "screening_time_ratio": screen_time / t if t > 0 else None,
                "chosen": len(chosen[strategy]),
                **quality(chosen[strategy], args.n),
                **extra.get(strategy, {}),
            }
        )
    print(f"m={args.m}, k·m={args.k * args.m} candidates, n={args.n}, engine {engine.name}")
    print(f"{'strategy':<22} {'s/select':>9} {'rollouts':>9} {'screen ×':>9} {'p∈[.2,.8]':>10}")
    for r in result_rows:
        ratio = r["screening_time_ratio"]
        print(
            f"{r['strategy']:<22} {r['seconds_per_selection']:>9.3f} "
            f"{r['rollouts_per_selection']:>9.0f} "
            f"{'-' if ratio is None else format(ratio, '.1f'):>9} "
            f"{r['share_p_in_0.2_0.8']:>10.2f}"
        )
    meta = {"settings": vars(args), "engine": engine.name, "training_prompts": len(train)}
    print(f"wrote {write_result('identification_speed', meta, result_rows)}")


def training_reports(
    rows: list[dict[str, Any]], train: list[int], epochs: int, m: int, seed: int
) -> list[tuple[list[str], list[list[float]]]]:
    """What PCL would report while training, the same for every value model: ``epochs``
    shuffled passes over the training prompts in batches of m, each prompt with 4 of its
    real ground-truth outcomes."""
    rng = random.Random(seed)
    order = list(train)
    reports = []
    for _ in range(epochs):
        rng.shuffle(order)
        for b in range(0, len(order), m):
            batch = [rows[i] for i in order[b : b + m]]
            outcomes = [
                [1.0] * int(r["successes"]) + [0.0] * (r["samples"] - int(r["successes"]))
                for r in batch
            ]
            reports.append(([r["prompt"] for r in batch], [rng.sample(o, 4) for o in outcomes]))
    return reports


if __name__ == "__main__":
    main()
