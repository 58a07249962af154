"""A TRL GRPO job with Sweetspot, for the TRL tests (``python``, ``accelerate launch`` or imported).

Every process appends what its reward functions saw to ``<record-dir>/rewards-<rank>.jsonl``
(global step, prompt text, combined reward per completion); the main process writes the
selections it made, TRL's logs and the report counts to ``<record-dir>/summary-<n>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig

from sweetspot_client.integrations.trl import SweetspotConfig, SweetspotGRPOTrainer


def dataset(size: int) -> Dataset:
    rows = [
        {
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"What is {i} + {i % 7}?"},
            ],
            "answer": str(i + i % 7),
        }
        for i in range(size)
    ]
    return Dataset.from_list(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--record-dir", required=True)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--save-steps", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--run", default="default")
    parser.add_argument("--per-device", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--num-iterations", type=int, default=1)
    parser.add_argument("--retry-after", type=float, default=30.0)
    parser.add_argument("--pool", type=int, default=40)
    parser.add_argument("--features", choices=["text", "policy"], default="text")
    return parser.parse_args(argv)


def build_trainer(
    args: argparse.Namespace, callbacks: list[Any] | None = None
) -> SweetspotGRPOTrainer:
    """The user's GRPO script, plus the two changed lines (import, ``sweetspot=``)."""
    rank = int(os.environ.get("RANK", "0"))  # set by torchrun / accelerate launch
    record_dir = Path(args.record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)

    def length_parity(completions: list[Any], **_: Any) -> list[float]:
        return [float(len(c[0]["content"]) % 2) for c in completions]

    def short(
        completions: list[Any], prompts: list[Any], trainer_state: Any, **_: Any
    ) -> list[float]:
        rewards = [0.5 if len(c[0]["content"]) < 20 else 0.0 for c in completions]
        parity = length_parity(completions)
        with open(record_dir / f"rewards-{rank}.jsonl", "a") as f:
            for p, a, b in zip(prompts, parity, rewards, strict=True):
                record = {
                    "step": trainer_state.global_step,
                    "prompt": p[-1]["content"],
                    "reward": a + b,
                }
                f.write(json.dumps(record) + "\n")
        return rewards

    config = GRPOConfig(
        output_dir=args.output_dir,
        use_cpu=True,
        bf16=False,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device,
        gradient_accumulation_steps=args.grad_accum,
        num_iterations=args.num_iterations,
        num_generations=4,
        max_completion_length=8,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="steps" if args.save_steps else "no",
        save_steps=args.save_steps or 500,
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
    )
    return SweetspotGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(args.model),
        processing_class=AutoTokenizer.from_pretrained(args.model),
        reward_funcs=[length_parity, short],
        args=config,
        train_dataset=dataset(args.pool),
        callbacks=callbacks,
        sweetspot=SweetspotConfig(
            url=args.url,
            run=args.run,
            reward_range=(0.0, 1.5),
            retry_after_s=args.retry_after,
            select_timeout_s=2.0,
            features=args.features,
        ),
    )


def write_summary(trainer: SweetspotGRPOTrainer, record_dir: Path) -> dict[str, Any]:
    """On the main process: the selections made, TRL's logs and the reporter's counts."""
    assert trainer.sweetspot is not None
    trainer.sweetspot.flush(60)
    prompt = trainer.sweetspot.curriculum.prompt
    selections = [
        {
            **{k: getattr(s, k) for k in ("step", "indices", "candidates", "model_version")},
            **{"fallback": s.fallback, "updates_behind": s.updates_behind},
            **{"features": s.features, "features_seconds": s.features_seconds},
            "prompts": [prompt(i) for i in s.indices],
        }
        for s in trainer.sweetspot.history
    ]
    summary = {
        "selections": selections,
        "logs": [entry for entry in trainer.state.log_history if "loss" in entry],
        "counts": vars(trainer.sweetspot.reporter.counts),
    }
    count = len(list(record_dir.glob("summary-*.json")))
    (record_dir / f"summary-{count}.json").write_text(json.dumps(summary))
    return summary


def main() -> None:
    args = parse_args()
    trainer = build_trainer(args)
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    if trainer.sweetspot is not None:
        write_summary(trainer, Path(args.record_dir))
        trainer.sweetspot.close()


if __name__ == "__main__":
    main()
