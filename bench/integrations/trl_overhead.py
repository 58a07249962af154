"""Sweetspot's share of a TRL GRPO step on CPU, with 1 and 2 processes.

    .venv/bin/python bench/integrations/trl_overhead.py [--steps 5] [--models tiny,smollm2]

Runs ``examples/trl_grpo.py``'s dataset and reward through ``SweetspotGRPOTrainer`` against
a local ``sweetspot-serve`` (MiniLM value model), once per (policy, processes). Per step it
reads TRL's own ``step_time`` and the integration's timers: ``hook`` (candidate draw,
``/v1/select``, broadcast to the other processes, row replacement), ``report_hook`` (mapping,
grouping and queueing the rewards), and the report's round trip, which the background
thread pays off the critical path. The share is (hook + report_hook) / step_time, medians
over the steps after the first, after one unrecorded warm-up job. ``tiny`` is a 2-layer
Llama with SmolLM2's tokenizer (fast steps: the share's upper end); ``smollm2`` the packaged
135M model. Writes
bench/results/trl_overhead.json.
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
sys.path.insert(0, str(ROOT / "examples"))


def worker(args: argparse.Namespace) -> None:
    """One TRL job (run as ``python`` or under ``accelerate launch``)."""
    from trl_grpo import arithmetic, arithmetic_config, correct

    from sweetspot_client.integrations.trl import SweetspotConfig, SweetspotGRPOTrainer
    from sweetspot_service.models import resolve_model

    dataset, data = arithmetic(256, seed=0)
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    config = arithmetic_config(
        args.out_dir, args.steps, processes=processes, max_completion_length=16, seed=0
    )
    trainer = SweetspotGRPOTrainer(
        model=resolve_model(args.model),
        reward_funcs=[correct(data)],
        args=config,
        train_dataset=dataset,
        sweetspot=SweetspotConfig(url=args.url, run=args.run),
    )
    trainer.train()
    if trainer.sweetspot is not None:
        trainer.sweetspot.flush(60)
        logs = [e for e in trainer.state.log_history if "step_time" in e]
        Path(args.out).write_text(json.dumps(logs))
        trainer.sweetspot.close()


def tiny_model(folder: Path) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from sweetspot_service.models import resolve_model

    config = LlamaConfig(
        vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model("smollm2")).save_pretrained(folder)
    return str(folder)


def run(model: str, processes: int, url: str, steps: int, tmp: Path) -> list[dict[str, Any]]:
    from sweetspot_service.testing import free_port

    out = tmp / f"{Path(model).name}-{processes}.json"
    run_name = f"bench-{Path(model).name}-{processes}"
    args = [str(Path(__file__).resolve()), "--worker", "--url", url, "--model", model]
    args += ["--steps", str(steps), "--out", str(out), "--out-dir", str(tmp / "out")]
    args += ["--run", run_name]
    if processes == 1:
        command = [sys.executable, *args]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        command += ["--num_processes", str(processes), "--num_machines", "1"]
        command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", str(free_port()), *args]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return list(json.loads(out.read_text()))


def summarise(model: str, processes: int, logs: list[dict[str, Any]]) -> dict[str, Any]:
    steady = logs[1:] or logs  # the first step also warms caches and connections

    def median(key: str) -> float:
        values = [float(e[key]) for e in steady if e.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    step, hook, report = (
        median("step_time"),
        median("sweetspot/hook_seconds"),
        median("sweetspot/report_hook_seconds"),
    )
    return {
        "policy": model,
        "processes": processes,
        "steps": len(steady),
        "step_s": step,
        "hook_s": hook,
        "select_s": median("sweetspot/select_seconds"),
        "report_hook_s": report,
        "report_round_trip_s": median("sweetspot/report_seconds"),
        "share": (hook + report) / step,
        "fallbacks": sum(int(e.get("sweetspot/uniform_fallback", 0)) for e in logs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--models", default="tiny,smollm2")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--url", "--model", "--out", "--out-dir", "--run"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from _common import write_result

    from sweetspot_trainer.service import embedded_service

    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        models = {"tiny": tiny_model(tmp / "tiny"), "smollm2": "smollm2"}
        with embedded_service(backbone="minilm", log_path=tmp / "service.log") as url:
            # An unrecorded job first: the service's first selections of its life are slower
            # (measured: 25-34 ms against 7-10 ms once warm), which would bias the first row.
            run(models["tiny"], 1, url, 3, tmp)
            for name in args.models.split(","):
                for processes in (int(p) for p in args.processes.split(",")):
                    logs = run(models[name], processes, url, args.steps, tmp)
                    rows.append({**summarise(models[name], processes, logs), "policy": name})
                    r = rows[-1]
                    print(
                        f"{name:8} x{processes}  step {r['step_s']:7.3f} s  hook "
                        f"{r['hook_s'] * 1e3:6.1f} ms (select {r['select_s'] * 1e3:5.1f} ms)  "
                        f"report hook {r['report_hook_s'] * 1e3:5.2f} ms  round trip "
                        f"{r['report_round_trip_s'] * 1e3:6.1f} ms  share {r['share']:.2%}",
                        flush=True,
                    )
    meta = {
        "command": "bench/integrations/trl_overhead.py " + " ".join(sys.argv[1:]),
        "value_model": "minilm (head mode)",
        "batch": "2 prompts x 4 completions per step, 16 new tokens",
        "note": "share = (hook + report_hook) / TRL step_time, medians after the first step",
    }
    path = write_result("trl_overhead", meta, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
