"""How well the value model ranks prompts it has not tried: the tables of ground_truth.py,
prediction_accuracy.py, identification_speed.py and real_problems.py (registered by name in
bench/_render.py), and their README lines."""

from __future__ import annotations

from typing import Any

from _render import Result, Results, fmt, headline, section, table


@section("ground_truth", "ground truth", reads=None)
def ground_truth(results: Results) -> str | None:
    meta = results.data("ground_truth_chain_sum.meta")
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
        "**Ground truth** (`python bench/value_model/ground_truth.py`): every prompt of the "
        "default pool "
        f"answered {meta['settings']['samples']} times by the initial SmolLM2-135M at "
        f"temperature {meta['settings']['temperature']} ({meta['engine']} engine); "
        f"{meta['wall_seconds'] / 60:.0f} min wall "
        f"({meta['core_seconds'] / 60:.0f} core-minutes on {meta['cpu_count']} cores), "
        f"{meta['tokens_per_second']:.0f} generated tokens/s. "
        "Settings `terms×digits`:\n\n"
        + table(["setting", "prompts", "mean p", "share p∈[0.2,0.8]", "share p=0"], rows)
    )


@section("prediction_accuracy", "prediction accuracy")
def prediction_accuracy(data: Result, results: Results) -> str:

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
        "**1. Prediction accuracy** (`python bench/value_model/prediction_accuracy.py`): held-out "
        "prompts "
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
        + table(["method", "MAE", "Brier", "Spearman", "splits", "measured"], rows)
        + "\n\n![prediction accuracy](bench/results/prediction_accuracy.png)"
    )


@section("identification_speed", "identification speed")
def identification(data: Result, results: Results) -> str:
    s = data["meta"]["settings"]
    accuracy = results.get("prediction_accuracy")
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
            fmt(r["screening_time_ratio"], ".1f") + ("×" if r["screening_time_ratio"] else ""),
            fmt(bench_spearman(r["strategy"]), ".3f"),
            fmt(r.get("spearman_here"), ".3f"),
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
        "(`python bench/value_model/identification_speed.py`): choose "
        f"m={s['m']} of {s['k'] * s['m']} held-out candidates, {s['rounds']} rounds, "
        f"{data['meta']['engine']} rollouts on CPU, PCL through HTTP with each value model "
        "(backbone/mode) after the same online training. *screening ÷*: 3-rollout "
        "screening's time per selection divided by this one's. *Spearman (accuracy)*: rank "
        "correlation of the prediction with the ground-truth p in the accuracy benchmark above "
        f"({accuracy['meta']['settings']['splits'] if accuracy else '–'} splits; for "
        "screening, the 3-rollout estimate's); *Spearman here*: the same on "
        "this run's held-out candidates. Quality of the chosen prompts from the ground "
        f"truth; E[eff] = mean of 1 − p^n − (1 − p)^n with n={s['n']}.{verdict}\n\n"
        + table(
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


@headline("prediction_accuracy")
def accuracy_headline(results: Results) -> list[str]:
    acc = results.get("prediction_accuracy")
    rho = {r["method"]: r for r in acc["rows"]} if acc else {}
    head, other, k8 = rho.get("V minilm/head"), rho.get("V smollm2/head"), rho.get("rollouts_k8")
    if not (head and k8):
        return []
    alternative = (
        f" (SmolLM2 as the backbone: {other['spearman']:.3f} ± {other['spearman_sd']:.3f})"
        if other
        else ""
    )
    return [
        "- **Synthetic prompts** (chain_sum arithmetic, whose difficulty is written in the "
        "text): the default value model (MiniLM, head mode) ranks prompts it never saw at "
        f"Spearman {head['spearman']:.3f} ± {head['spearman_sd']:.3f}{alternative} against "
        "their success rate over 24 rollouts no method saw; an 8-rollout estimate of each "
        f"prompt reaches {k8['spearman']:.3f} ± {k8['spearman_sd']:.3f}."
    ]


@headline("real_problems")
def real_headline(results: Results) -> list[str]:
    data = results.get("real_problems")
    parts = data["rows"] if data and isinstance(data["rows"], dict) else {}
    rows = {r["method"]: r for r in parts.get("main", [])}
    default = data["meta"]["default"] if data else ""
    head, k1, k3 = rows.get(f"V {default}"), rows.get("rollouts_k1"), rows.get("rollouts_k3")
    if not (head and k1 and k3):
        return []
    best = max(
        (r for m, r in rows.items() if m.startswith("V ")), key=lambda r: r["spearman_within"]
    )
    verdict = "below" if head["spearman_within"] < k1["spearman_within"] else "at or above"
    return [
        "- **Real problems** (GSM8K and MATH level 5, truth: the share of about 40 public LLMs "
        "that solved each): inside one benchmark the default value model ranks problems it "
        f"never saw at Spearman {head['spearman_within']:.3f} ± {head['spearman_within_sd']:.3f}"
        f", {verdict} a single rollout ({k1['spearman_within']:.3f}; three rollouts "
        f"{k3['spearman_within']:.3f}); the best of {sum(m.startswith('V ') for m in rows)} "
        f"feature and fit configs tried reaches {best['spearman_within']:.3f} "
        f"(`{best['method'][2:]}`)."
    ]


@headline("identification_speed")
def cost_headline(results: Results) -> list[str]:
    ident = results.get("identification_speed")
    pcl = [r for r in ident["rows"] if r["strategy"].startswith("pcl ")] if ident else []
    if not pcl:
        return []
    parts = ", ".join(
        f"{r['strategy'].removeprefix('pcl ')} {r['screening_time_ratio']:.0f}×" for r in pcl
    )
    return [
        "- **Cost**: choosing m of k·m candidates takes one forward pass; against "
        f"screening each with 3 rollouts it is faster by {parts} on 2 CPU cores."
    ]


REAL_PARTS = {
    "main": "every feature and fit config, beside the k-rollout estimates and the baselines",
    "revisit": "after each held-out problem is reported once with n = 4 (the posterior), "
    "against the raw 4 draws and text-free Beta priors",
    "curve": "the learning curve: the default config trained on part of the training problems",
    "finetune": "full mode: the default backbone, cut at its block, fine-tuned with its head on "
    "the whole window (2 epochs) against the head alone on the same folds",
}


@section("real_problems", "real problems")
def real_problems(data: Result, results: Results) -> str | None:
    """One table per part the JSON holds (main, revisit, curve, leave_out; any may be absent)."""
    parts = data["rows"] if isinstance(data["rows"], dict) else {}
    if not parts:
        return None
    m, p = data["meta"], data["meta"]["protocol"]
    checks = ", ".join(f"{k} {v:.0e}" for k, v in m.get("feature_check_max_abs_diff", {}).items())
    text = (
        "**Real problems** (`python bench/value_model/real_problems.py`): "
        f"{m['problems']:,} GSM8K and MATH level 5 problems (`{m['data']}`), the truth p the "
        f"share of about 40 public LLMs that solved each; {p['folds']} folds of "
        f"{p['held_out']} held-out problems, the value model streamed once over the others in "
        f"batches of {p['batch']}, each reported with the mean of n = {p['n']} Bernoulli(p) "
        "draws. Headline: *Spearman within* (the mean of GSM8K's and MATH-5's, ± sd over "
        "folds), since choosing near τ happens inside one dataset; *mixed*: both pooled. "
        f"`rollouts_kK`: the mean of K draws (averaged over {p['rollout_seeds']} draw seeds); "
        "Brier against a fresh outcome. Features checked against the service's backbone "
        f"(max abs difference: {checks}). `curve`, `revisit` and `leave_out` use "
        f"`{m['default']}`."
    )
    for part, about in REAL_PARTS.items():
        if rows := parts.get(part):
            folds = rows[0].get("folds", p["folds"])
            on = f" ({folds} of the {p['folds']} folds)" if folds != p["folds"] else ""
            text += f"\n\n`{part}`: {about}{on}.\n\n" + _real_table(rows)
    if rows := parts.get("leave_out"):
        text += (
            "\n\n`leave_out`: trained on one benchmark, scoring the other's held-out problems "
            "(AUROC: the score's sd telling them from the seen benchmark's).\n\n"
            + table(
                ["config", "seen → unseen", "Spearman", "MAE", "mean p̂ vs truth", "AUROC sd"],
                [
                    [
                        r["method"][2:],
                        f"{r['seen']} → {r['unseen']}",
                        fmt(r["spearman"]),
                        fmt(r["mae"]),
                        f"{fmt(r['mean_predicted'])} vs {fmt(r['mean_truth'])}",
                        fmt(r["uncertainty_auroc"], ".2f"),
                    ]
                    for r in rows
                ],
            )
        )
    return text


def _real_table(rows: list[dict[str, Any]]) -> str:
    def spread(r: dict[str, Any], key: str) -> str:
        sd = r.get(f"{key}_sd")
        return fmt(r[key]) + ("" if sd is None or sd != sd else f" ± {sd:.3f}")

    header = ["method", "Spearman within", "GSM8K", "MATH-5", "mixed", "MAE", "Brier"]
    keys = ("spearman_gsm8k-test", "spearman_math-test-level5", "spearman_mixed", "mae", "brier")
    cells = [[r["method"], spread(r, "spearman_within"), *(fmt(r[k]) for k in keys)] for r in rows]
    return table(header, cells)


@section("policy_features", "policy features")
def policy_features(data: Result, results: Results) -> str:
    """The policy's prefill as features against the prompt text, on the synthetic table; and
    the prefill's share of a bundled-trainer step."""
    m, s = data["meta"], data["meta"]["settings"]

    def spread(r: dict[str, Any]) -> str:
        sd = r.get("spearman_sd")
        return fmt(r["spearman"]) + ("" if sd is None or sd != sd else f" ± {sd:.3f}")

    rows = [
        [r["method"], spread(r), fmt(r["mae"], ".4f"), fmt(r["brier"], ".4f")] for r in data["rows"]
    ]
    steps = [
        [
            t["value_features"],
            str(t["steps_averaged"]),
            fmt(t["time_step"], ".1f"),
            fmt(t["time_select"], ".1f"),
            fmt(t["time_prefill"], ".1f"),
            fmt(t["prefill_share"], ".1%"),
        ]
        for t in m.get("trainer_steps", [])
    ]
    text = (
        "**Policy features** (`python bench/value_model/policy_features.py`): the value "
        "model fed the policy's own prefill (mean over the prompt's tokens of a block's hidden "
        f"states) against the prompt text, on `{m['ground_truth']}` ({m['prompts']} prompts, "
        f"{s['splits']} splits of {s['holdout']} held out, {s['epochs']} passes in batches of "
        f"{s['batch']}). The policy is the untrained SmolLM2 that made the truth, so this says "
        "only that the feature path works as well as the text path here; what a trained or "
        "larger policy's features add on real problems is not measured (this machine cannot "
        f"run such a policy). `+1 group`: after one reported group of 4.\n\n"
        + table(["method", "Spearman ± sd", "MAE", "Brier"], rows)
    )
    if steps:
        text += (
            f"\n\nCost inside the bundled trainer ({m['policy']}, {s['engine']} rollouts, "
            f"{s['threads']} thread(s), load {m['load_average_start']:.1f} at the start; the "
            "first step left out; seconds):\n\n"
            + table(["features", "steps", "step", "select", "prefill", "prefill share"], steps)
        )
    return text
