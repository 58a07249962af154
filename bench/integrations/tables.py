"""What Sweetspot costs inside other trainers' loops: the tables of trl_overhead.py,
verl_overhead.py and async_prefetch.py (registered in bench/_render.py).
"""

from __future__ import annotations

from _render import Result, Results, cells, command, headline, in_ms, section, table


@section("trl_overhead", "TRL integration overhead")
def trl_overhead(data: Result, results: Results) -> str:
    m = data["meta"]
    timed = in_ms(data["rows"], "select_s", "hook_s", "report_hook_s", "report_round_trip_s")
    rows = cells(
        [{**r, "pct": 100 * r["share"]} for r in timed],
        "{policy} | {processes} | {step_s:.2f} | {select_s_ms:.1f} | {hook_s_ms:.1f} | "
        "{report_hook_s_ms:.2f} | {pct:.2f} % | {report_round_trip_s_ms:.0f}",
    )
    run = command(m, "bench/integrations/trl_overhead.py")
    return (
        f"**Sweetspot's share of a TRL step** (`python {run}`): TRL "
        f"`GRPOTrainer` with `SweetspotGRPOTrainer`, {m['batch']}, value model "
        f"{m['value_model']}; medians over the steps after the first. *Selection hook*: "
        "candidate draw, `/v1/select` and the broadcast to the other processes; *report hook*: "
        "mapping, grouping and queueing the rewards; the report's round trip runs in a "
        "background thread, off the step. A `tiny` 2-layer policy makes steps short, so its "
        "share is the upper end.\n\n"
        + table(
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


@section("verl_overhead", "verl integration overhead")
def verl_overhead(data: Result, results: Results) -> str:
    m = data["meta"]
    plain, ours = data["rows"]
    run = command(m, "bench/integrations/verl_overhead.py")
    return (
        f"**Sweetspot's share of a verl step** (`python {run}`): verl "
        f"{m['verl']}, {m['batch']}, value model {m['value_model']}; medians over "
        f"{ours['steps']} steps after the first. Plain verl: {plain['step_s']:.2f} s a step; "
        f"with Sweetspot {ours['step_s']:.2f} s, plus the selection made in verl's dataloader "
        f"({1e3 * ours['select_s']:.1f} ms) and the report hook "
        f"({1e3 * ours['report_hook_s']:.2f} ms): **{100 * ours['share']:.2f} %** of a step "
        f"(a tiny policy's short steps: the upper end). The report's round trip "
        f"({1e3 * ours['report_round_trip_s']:.0f} ms) runs in a background thread; "
        f"{ours['fallbacks']} uniform fallbacks."
    )


@section("async_prefetch", "async prefetch")
def async_prefetch(data: Result, results: Results) -> str:
    st = data["meta"]["settings"]
    seq, pre = data["rows"]
    rounds = ", ".join(f"{100 * h:.0f} %" for h in pre["hidden_share_rounds"])
    run = command(data["meta"], "bench/integrations/async_prefetch.py")
    return (
        f"**Prefetching the next selection in an async loop** (`python "
        f"{run}`): `AsyncSweetspotClient` + `PromptCurriculum.anext_batch`, "
        f"m={st['m']} of {st['k'] * st['m']} candidates, a CPU-bound stand-in update "
        f"(median {st['train_seconds_median']:.2f} s) in a worker thread; sequential and "
        "prefetching blocks of "
        f"{st['steps']} steps alternate, {st['rounds']} rounds.\n\n"
        + table(
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


@headline("trl_overhead")
def trl_headline(results: Results) -> list[str]:
    trl = results.get("trl_overhead")
    if trl is None:
        return []
    share = max(r["share"] for r in trl["rows"] if "share" in r)
    return [
        f"- **Overhead in TRL**: at most {100 * share:.1f} % of a step on a tiny policy "
        "(the worst case: real policies' steps are longer)."
    ]
