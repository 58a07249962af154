"""GRPO with TRL on reasoning-gym arithmetic, prompts chosen by Sweetspot (CPU-friendly).

    python examples/trl_grpo.py --steps 2                  # embedded service, packaged SmolLM2
    python examples/trl_grpo.py --url http://localhost:8000 --model path/or/hub-name

A plain TRL script; the lines marked ``# sweetspot`` are all that Sweetspot adds (README,
"Use it with TRL"). Without ``--url`` it starts a local ``sweetspot-serve`` (MiniLM value
model) for the run, which needs the service distribution installed (``make venv`` does).
Under ``accelerate launch`` pass ``--url`` (one service for every process).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import reasoning_gym
from datasets import Dataset
from trl import GRPOConfig

from sweetspot_client.integrations.trl import SweetspotConfig, SweetspotGRPOTrainer  # sweetspot

INSTRUCTION = "Give only the final answer after 'Answer:'."


def arithmetic(size: int, seed: int) -> tuple[Dataset, Any]:
    """Chain sums of 2-3 terms with 1-2 digits: easy to hard for a 135M model."""
    data = reasoning_gym.create_dataset(
        "chain_sum", size=size, seed=seed, min_terms=2, max_terms=3, min_digits=1, max_digits=2
    )
    rows = [
        {"prompt": [{"role": "user", "content": f"{e['question']}\n{INSTRUCTION}"}], "entry": e}
        for e in data
    ]
    return Dataset.from_list(rows), data


def correct(data: Any) -> Any:
    """Reward 1 when the text after the last 'Answer:' (else the last number) is right."""

    def reward(completions: list[Any], entry: list[dict[str, Any]], **_: Any) -> list[float]:
        scores = []
        for completion, e in zip(completions, entry, strict=True):
            text = completion[0]["content"]
            tail = re.split(r"answer\s*:", text, flags=re.IGNORECASE)[-1]
            numbers = re.findall(r"-?\d+", tail)
            guess = numbers[0] if numbers else None
            scores.append(float(data.score_answer(guess, e) >= 1.0))
        return scores

    return reward


def arithmetic_config(
    output_dir: str,
    steps: int,
    *,
    processes: int = 1,
    max_completion_length: int = 32,
    seed: int = 42,
) -> GRPOConfig:
    """TRL's GRPO settings for this task on CPU: 2 prompts x 4 answers per step in all,
    split over ``processes``; no checkpoints, logs every step."""
    return GRPOConfig(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=8 // processes,
        num_generations=4,
        max_completion_length=max_completion_length,
        temperature=1.0,
        learning_rate=1e-6,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=seed,
    )


@contextlib.contextmanager
def service(url: str | None, folder: Path) -> Iterator[str]:
    """The given service, or a local one for this run."""
    if url:
        yield url
        return
    from sweetspot_trainer.service import embedded_service

    with embedded_service(backbone="minilm", log_path=folder / "sweetspot.log") as local:
        yield local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="path, hub name or 'smollm2'")
    parser.add_argument("--url", default=None, help="Sweetspot service (default: start one)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--pool", type=int, default=256, help="prompts in the dataset")
    args = parser.parse_args()
    output = Path(args.output_dir or tempfile.mkdtemp(prefix="trl-grpo-"))

    from sweetspot_service.models import resolve_model  # the packaged SmolLM2, no download

    dataset, data = arithmetic(args.pool, seed=0)
    config = arithmetic_config(str(output), args.steps)
    with service(args.url, output) as url:
        trainer = SweetspotGRPOTrainer(  # sweetspot (was GRPOTrainer)
            model=resolve_model(args.model),
            reward_funcs=[correct(data)],
            args=config,
            train_dataset=dataset,
            sweetspot=SweetspotConfig(url=url),  # sweetspot
        )
        trainer.train()
    print(f"done: {args.steps} steps, logs in {output}")


if __name__ == "__main__":
    main()
