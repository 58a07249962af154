"""Throughput of /v1/score through HTTP next to the bare model forward, paired in one run.

    .venv/bin/python bench/speed/score_throughput.py [--backbone smollm2] [--batch 64]
        [--block 12] [--rounds 8] [--concurrency 1 2 4 8]

The bare forward (``ValueModel.predict`` in this process) and a real ``sweetspot-serve``
process score the same batches of distinct training prompts; the service runs with the
embedding cache and the score cache off so every request pays the forward (a cached row
is reported separately). Both paths first run every batch once, unmeasured, and both keep
freed memory for reuse (``sweetspot_service.allocator``; the service's default).

These machines drift by 15-25 % within a minute, more than the overhead being measured, so
the comparison is paired: each round runs a short block of requests as bare, HTTP at
concurrency c1, bare, HTTP at c2, ..., bare, and each HTTP block is divided by the mean of the
bare blocks just before and after it. A row's ``ratio_to_bare`` is the median of its rounds'
ratios; the quartiles and every round's ratio are kept too. The order of the concurrencies
rotates from round to round. Prints a table and writes
bench/results/score_throughput_<backbone>.{json,png}.

The service also reports how busy its model thread was (``model_busy_share``) and the prompts
it scored per busy second, which separates the forward's own speed from idle time between
requests. FLOP/s count 2 × non-embedding parameters × prompt tokens against a large matmul
timed here.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import RESULTS, gemm_peak, non_embedding_parameters, percentile, write_result

from sweetspot_client import SweetspotClient
from sweetspot_service.allocator import keep_freed_memory
from sweetspot_service.backbone import Backbone
from sweetspot_service.value_model import ValueModel
from sweetspot_trainer.service import embedded_service
from sweetspot_trainer.tasks import make_task


def prefill_flops(model: ValueModel, prompts: list[str]) -> tuple[float, float]:
    """(2 × non-embedding parameters × tokens) of scoring ``prompts``, and mean tokens."""
    backbone = model.backbone
    params = non_embedding_parameters(backbone.model)
    ids = backbone.tokenizer(prompts, truncation=True, max_length=backbone.max_length)
    tokens = sum(len(x) for x in ids["input_ids"])
    return 2.0 * params * tokens, tokens / len(prompts)


@dataclass
class Pass:
    """One timed block of requests."""

    prompts: int
    seconds: float
    latencies: list[float]
    busy_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.prompts / self.seconds


@dataclass
class Series:
    """Every pass of one path (bare, or HTTP at one concurrency), and its paired ratios."""

    path: str
    concurrency: int
    passes: list[Pass] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)


def bare_pass(model: ValueModel, block: list[list[str]]) -> Pass:
    latencies = []
    start = time.perf_counter()
    for batch in block:
        t = time.perf_counter()
        model.predict(batch)
        latencies.append(time.perf_counter() - t)
    return Pass(sum(len(b) for b in block), time.perf_counter() - start, latencies)


class HttpLoad:
    """``concurrency`` clients, each on its own connection, sending a block of score requests."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.concurrency = concurrency
        self.clients = [SweetspotClient(base_url=url, timeout=600) for _ in range(concurrency)]
        self.pool = ThreadPoolExecutor(concurrency)

    def run(self, block: list[list[str]]) -> Pass:
        def one(i: int) -> float:
            t = time.perf_counter()
            self.clients[i % self.concurrency].score(block[i])
            return time.perf_counter() - t

        busy_before = model_busy_seconds(self.url)
        start = time.perf_counter()
        latencies = list(self.pool.map(one, range(len(block))))
        seconds = time.perf_counter() - start
        busy = model_busy_seconds(self.url) - busy_before
        return Pass(sum(len(b) for b in block), seconds, latencies, busy)

    def close(self) -> None:
        self.pool.shutdown()
        for c in self.clients:
            c.close()


def model_busy_seconds(url: str) -> float:
    """The service's own count of seconds its model thread computed."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("sweetspot_model_thread_busy_seconds_total "):
            return float(line.split()[1])
    raise RuntimeError("the service exports no sweetspot_model_thread_busy_seconds_total")


def paired_rounds(
    bare: Callable[[list[list[str]]], Pass],
    loads: dict[int, Callable[[list[list[str]]], Pass]],
    blocks: list[list[list[str]]],
    rounds: int,
) -> tuple[Series, dict[int, Series]]:
    """bare, HTTP c_a, bare, HTTP c_b, ..., bare per round; each HTTP pass over its neighbours."""
    base = Series("bare forward", 1)
    http = {c: Series("HTTP /v1/score", c) for c in loads}
    order = list(loads)
    total = rounds * len(order)
    with tqdm(total=total, desc="paired blocks", unit="block", leave=False) as bar:
        for r in range(rounds):
            block = blocks[r % len(blocks)]
            shift = r % len(order)
            before = bare(block)
            base.passes.append(before)
            for c in order[shift:] + order[:shift]:
                measured = loads[c](block)
                after = bare(block)
                base.passes.append(after)
                http[c].passes.append(measured)
                http[c].ratios.append(measured.rate / statistics.fmean([before.rate, after.rate]))
                before = after
                bar.update()
    return base, http


def summary(series: Series, flops_per_prompt: float, peak: float) -> dict[str, Any]:
    prompts = sum(p.prompts for p in series.passes)
    seconds = sum(p.seconds for p in series.passes)
    latencies = [x for p in series.passes for x in p.latencies]
    row: dict[str, Any] = {
        "path": series.path,
        "concurrency": series.concurrency,
        "passes": len(series.passes),
        "requests": len(latencies),
        "prompts": prompts,
        "seconds": seconds,
        "prompts_per_s": prompts / seconds,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p90_s": percentile(latencies, 90),
        "latency_p99_s": percentile(latencies, 99),
        "model_flops_per_s": flops_per_prompt * prompts / seconds,
        "share_of_gemm_peak": flops_per_prompt * prompts / seconds / peak,
    }
    if series.ratios:
        row["ratio_to_bare"] = statistics.median(series.ratios)
        row["ratio_p25"] = percentile(series.ratios, 25)
        row["ratio_p75"] = percentile(series.ratios, 75)
        row["ratio_min"] = min(series.ratios)
        row["round_ratios"] = series.ratios
    busy = [p.busy_seconds for p in series.passes if p.busy_seconds is not None]
    if busy:
        row["model_busy_share"] = sum(busy) / seconds
        row["prompts_per_busy_s"] = prompts / sum(busy) if sum(busy) > 0 else None
    return row


def plot(rows: list[dict[str, Any]], backbone: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = [r for r in rows if "round_ratios" in r]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, r in enumerate(http):
        ys = r["round_ratios"]
        xs = [i + 0.3 * (j / max(1, len(ys) - 1) - 0.5) for j in range(len(ys))]  # spread
        ax.scatter(xs, ys, s=14, alpha=0.6, color="tab:blue")
        ax.hlines(r["ratio_to_bare"], i - 0.25, i + 0.25, color="tab:blue", lw=2)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(0.9, color="tab:red", lw=0.8, ls="--", label="target 0.9")
    ax.set_xticks(range(len(http)), [f"c={r['concurrency']}" for r in http])
    ax.set_ylabel("HTTP / bare prompts/s")
    ax.set_title(f"/v1/score against the bare forward, {backbone}: rounds and median")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=64, help="prompts per request (k·m)")
    parser.add_argument("--block", type=int, default=12, help="requests per timed block")
    parser.add_argument("--rounds", type=int, default=8, help="paired rounds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()

    distinct = max(args.rounds, 4)  # blocks of distinct prompts, reused round-robin
    prompts = [
        p.prompt
        for p in make_task("chain_sum", seed=7, size=args.batch * args.block * distinct).problems
    ]
    batches = [prompts[i : i + args.batch] for i in range(0, len(prompts), args.batch)]
    blocks = [batches[i : i + args.block] for i in range(0, len(batches), args.block)]
    keep_freed_memory()  # as the service does by default: the same allocator on both paths
    model = ValueModel(Backbone.load(args.backbone, dtype=args.dtype), embedding_cache_size=0)
    for batch in batches:  # warm-up over every batch shape: oneDNN tunes per shape
        model.predict(batch)
    flops, mean_tokens = prefill_flops(model, prompts)
    per_prompt = flops / len(prompts)
    peak = gemm_peak(model.backbone.model.dtype)
    extra = ["--embedding-cache-size", "0", "--score-cache-ttl-s", "0", "--dtype", args.dtype]
    name = f"score_throughput_{args.backbone}" + ("" if args.dtype == "auto" else f"_{args.dtype}")
    log = RESULTS / f"{name}.service.log"
    with embedded_service(backbone=args.backbone, log_path=log, extra_args=extra) as url:
        loads = {c: HttpLoad(url, c) for c in args.concurrency}
        for batch in batches:  # the same warm-up through the service
            loads[args.concurrency[0]].clients[0].score(batch)
        base, http = paired_rounds(
            lambda block: bare_pass(model, block),
            {c: load.run for c, load in loads.items()},
            blocks,
            args.rounds,
        )
        for load in loads.values():
            load.close()
    rows = [summary(base, per_prompt, peak)] + [summary(s, per_prompt, peak) for s in http.values()]
    with embedded_service(
        backbone=args.backbone, log_path=log, extra_args=["--dtype", args.dtype]
    ) as url:
        load = HttpLoad(url, 1)
        load.run(batches)  # fills the head-mode cache
        cached = Series("HTTP, cached", 1, [load.run(batches)])
        load.close()
    row = summary(cached, per_prompt, peak)
    row["ratio_to_bare"] = row["prompts_per_s"] / rows[0]["prompts_per_s"]
    row["model_flops_per_s"] = row["share_of_gemm_peak"] = None  # no forward ran
    rows.append(row)
    rows[0]["ratio_to_bare"] = 1.0

    print(
        f"backbone {args.backbone} ({args.dtype}), {args.batch} prompts/request, "
        f"{mean_tokens:.1f} tokens/prompt, GEMM peak {peak / 1e9:.0f} GFLOP/s, "
        f"{args.rounds} rounds of {args.block} requests"
    )
    header = f"{'path':<16} {'conc':>4} {'prompts/s':>10} {'p50 s':>7} {'p99 s':>7}"
    print(f"{header} {'× bare':>7} {'p25-p75':>11} {'% peak':>7} {'busy':>5} {'per busy s':>10}")
    for r in rows:
        spread = f"{r['ratio_p25']:.2f}-{r['ratio_p75']:.2f}" if "ratio_p25" in r else "-"
        busy = r.get("model_busy_share")
        per_busy = r.get("prompts_per_busy_s")
        print(
            f"{r['path']:<16} {r['concurrency']:>4} {r['prompts_per_s']:>10.1f} "
            f"{r['latency_p50_s']:>7.3f} {r['latency_p99_s']:>7.3f} {r['ratio_to_bare']:>7.2f} "
            f"{spread:>11}"
            + (f" {100 * r['share_of_gemm_peak']:>7.1f}" if r["share_of_gemm_peak"] else "       -")
            + (f" {busy:>5.2f} {per_busy:>10.1f}" if busy is not None and per_busy else "")
        )
    meta = {
        "backbone": args.backbone,
        "dtype": args.dtype,
        "batch": args.batch,
        "block": args.block,
        "rounds": args.rounds,
        "keep_freed_memory": True,
        "method": "paired rounds: bare, HTTP c, bare, ...; ratio = HTTP / mean(neighbouring bare)",
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "mean_prompt_chars": statistics.fmean(len(p) for p in prompts),
        "mean_prompt_tokens": mean_tokens,
        "gemm_peak_flops_per_s": peak,
    }
    plot(rows, args.backbone, RESULTS / f"{name}.png")
    print(f"wrote {write_result(name, meta, rows)} and .png")


if __name__ == "__main__":
    main()
