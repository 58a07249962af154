"""Throughput of /v1/score through HTTP next to the bare model forward, in one run.

    .venv/bin/python bench/score_throughput.py [--backbone smollm2] [--batch 64]
        [--requests 24] [--concurrency 1 2 4 8]

The bare forward (``ValueModel.predict`` in this process) and a real ``sweetspot-serve``
process score the same batches of distinct training prompts; the service runs with the
embedding cache and the score cache off so every request pays the forward (a cached row
is reported separately). Both paths first run every batch once, unmeasured. Prints a
table and writes bench/results/score_throughput_<backbone>.json.
The service also reports how busy its model thread was (``model_busy_share``) and the prompts
it scored per busy second, which separates the forward's own speed from idle time between
requests. The number that matters is the ratio: service prompts/s over bare prompts/s; bare and HTTP
passes alternate, and each HTTP row is divided by the mean of the bare passes around it. FLOP/s
count 2 × non-embedding parameters × prompt tokens against a large matmul timed here.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, gemm_peak, non_embedding_parameters, percentile, write_result

from sweetspot_client import SweetspotClient
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


def batches_of(prompts: list[str], size: int, count: int) -> list[list[str]]:
    return [prompts[i * size : (i + 1) * size] for i in range(count)]


def bare(backbone: str, batches: list[list[str]], dtype: str) -> tuple[dict[str, Any], ValueModel]:
    model = ValueModel(Backbone.load(backbone, dtype=dtype), embedding_cache_size=0)
    bare_run(model, batches)  # warm-up over every batch shape: oneDNN tunes per shape
    return bare_run(model, batches)


def bare_run(model: ValueModel, batches: list[list[str]]) -> tuple[dict[str, Any], ValueModel]:
    latencies = []
    start = time.perf_counter()
    for batch in batches:
        t = time.perf_counter()
        model.predict(batch)
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    return _row("bare forward", 1, batches, wall, latencies), model


def through_http(url: str, batches: list[list[str]], concurrency: int) -> dict[str, Any]:
    clients = [SweetspotClient(base_url=url, timeout=600) for _ in range(concurrency)]
    for batch in batches:  # warm-up over every batch shape, as for the bare forward
        clients[0].score(batch)

    def one(i: int) -> float:
        t = time.perf_counter()
        clients[i % concurrency].score(batches[i])
        return time.perf_counter() - t

    busy_before = model_busy_seconds(url)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(len(batches))))
    wall = time.perf_counter() - start
    busy = model_busy_seconds(url) - busy_before
    for c in clients:
        c.close()
    row = _row("HTTP /v1/score", concurrency, batches, wall, latencies)
    row["model_busy_share"] = busy / wall
    row["prompts_per_busy_s"] = row["prompts"] / busy if busy > 0 else None
    return row


def model_busy_seconds(url: str) -> float:
    """The service's own count of seconds its model thread computed."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("sweetspot_model_thread_busy_seconds_total "):
            return float(line.split()[1])
    raise RuntimeError("the service exports no sweetspot_model_thread_busy_seconds_total")


def _row(
    path: str, concurrency: int, batches: list[list[str]], wall: float, latencies: list[float]
) -> dict[str, Any]:
    prompts = sum(len(b) for b in batches)
    return {
        "path": path,
        "concurrency": concurrency,
        "requests": len(batches),
        "prompts": prompts,
        "seconds": wall,
        "prompts_per_s": prompts / wall,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p90_s": percentile(latencies, 90),
        "latency_p99_s": percentile(latencies, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=64, help="prompts per request (k·m)")
    parser.add_argument("--requests", type=int, default=24, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()

    need = args.batch * args.requests
    prompts = [p.prompt for p in make_task("chain_sum", seed=7, size=need).problems]
    batches = batches_of(prompts, args.batch, args.requests)
    first, model = bare(args.backbone, batches, args.dtype)
    rows = [first]
    flops, mean_tokens = prefill_flops(model, prompts)
    peak = gemm_peak(model.backbone.model.dtype)
    extra = ["--embedding-cache-size", "0", "--score-cache-ttl-s", "0", "--dtype", args.dtype]
    name = f"score_throughput_{args.backbone}" + ("" if args.dtype == "auto" else f"_{args.dtype}")
    log = RESULTS / f"{name}.service.log"
    # Interleaved: bare, HTTP c1, bare, HTTP c2, ..., bare. The machine drifts by 10-20 %
    # over a run, so each HTTP row is compared with the bare passes just before and after it.
    with embedded_service(backbone=args.backbone, log_path=log, extra_args=extra) as url:
        for concurrency in args.concurrency:
            rows.append(through_http(url, batches, concurrency))
            rows.append(bare_run(model, batches)[0])
    with embedded_service(
        backbone=args.backbone, log_path=log, extra_args=["--dtype", args.dtype]
    ) as url:
        through_http(url, batches, 1)  # fills the head-mode cache
        cached = through_http(url, batches, 1)
        cached["path"] = "HTTP, cached"
        rows.append(cached)

    bare_rates = [r["prompts_per_s"] for r in rows if r["path"] == "bare forward"]
    for i, r in enumerate(rows):
        if r["path"] == "HTTP /v1/score":
            neighbours = statistics.fmean(
                [rows[i - 1]["prompts_per_s"], rows[i + 1]["prompts_per_s"]]
            )
        else:
            neighbours = statistics.fmean(bare_rates)
        r["ratio_to_bare"] = r["prompts_per_s"] / neighbours
        r["model_flops_per_s"] = flops / len(prompts) * r["prompts_per_s"]
        r["share_of_gemm_peak"] = r["model_flops_per_s"] / peak
    rows[-1]["model_flops_per_s"] = rows[-1]["share_of_gemm_peak"] = None  # no forward ran
    print(
        f"backbone {args.backbone} ({args.dtype}), {args.batch} prompts/request, "
        f"{mean_tokens:.1f} tokens/prompt, GEMM peak {peak / 1e9:.0f} GFLOP/s"
    )
    header = f"{'path':<16} {'conc':>4} {'prompts/s':>10} {'p50 s':>7} {'p99 s':>7}"
    print(f"{header} {'× bare':>7} {'% peak':>7} {'busy':>5} {'per busy s':>10}")
    for r in rows:
        busy = r.get("model_busy_share")
        per_busy = r.get("prompts_per_busy_s")
        print(
            f"{r['path']:<16} {r['concurrency']:>4} {r['prompts_per_s']:>10.1f} "
            f"{r['latency_p50_s']:>7.3f} {r['latency_p99_s']:>7.3f} {r['ratio_to_bare']:>7.2f}"
            + (f" {100 * r['share_of_gemm_peak']:>7.1f}" if r["share_of_gemm_peak"] else "       -")
            + (f" {busy:>5.2f} {per_busy:>10.1f}" if busy is not None and per_busy else "")
        )
    meta = {
        "backbone": args.backbone,
        "dtype": args.dtype,
        "batch": args.batch,
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "mean_prompt_chars": statistics.fmean(len(p) for p in prompts),
        "mean_prompt_tokens": mean_tokens,
        "gemm_peak_flops_per_s": peak,
    }
    print(f"wrote {write_result(name, meta, rows)}")


if __name__ == "__main__":
    main()
