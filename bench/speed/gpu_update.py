"""What the value model's own work costs on a GPU: score, head-mode update, full-mode update.

    python bench/speed/gpu_update.py              # on a GPU machine (device tool)
    python bench/speed/gpu_update.py --smoke      # tiny shapes on CPU: checks the script

Runs the service's real ``ValueModel`` (not a re-implementation) over backbones built from
real architecture configs with random weights (SmolLM2-135M, the packaged one, and
Qwen3-0.6B / Qwen3-1.7B shapes): no weights can be downloaded there, and speed does not
depend on their values. Prompts are random words of a word-level tokenizer built in memory,
so each prompt is exactly ``--prompt-tokens`` tokens.

Per backbone, side by side in one process:
- ``score``: ``ValueModel.score`` of ``--candidates`` unseen prompts (one forward pass each,
  plus the ridge's prediction and novelty on the CPU);
- ``head update`` (``--head-fit ridge``, the default): ``update`` of ``--batch`` unseen
  prompts: their forward pass, then the closed-form refit on the CPU's float64 statistics;
- ``full update``: ``update`` in ``train_mode="full"``: forward + backward + AdamW over the
  whole backbone (float32 master weights under bf16 autocast, as the service does);
- peak GPU memory of each mode.
Medians over ``--repeats`` after two warm-ups. Writes bench/results/gpu_update_<device>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModel, LlamaConfig, PretrainedConfig, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import sync_device, write_result
from gpu_value_model import _qwen3

from sweetspot_service.backbone import Backbone
from sweetspot_service.value_model import EmbeddingCache, ValueModel

WORDS = 4000


def configs(smoke: bool) -> dict[str, PretrainedConfig]:
    if smoke:
        tiny = LlamaConfig(
            vocab_size=WORDS + 2,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        return {"tiny-llama": tiny}
    return {
        "SmolLM2-135M": LlamaConfig(  # the packaged backbone's shapes
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=8192,
            tie_word_embeddings=True,
        ),
        "Qwen3-0.6B": _qwen3(hidden=1024, intermediate=3072),
        "Qwen3-1.7B": _qwen3(hidden=2048, intermediate=6144),
    }


def word_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[PAD]": 0, "[UNK]": 1} | {f"w{i}": i + 2 for i in range(WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]")
    tok.padding_side = "right"
    return tok


class Prompts:
    """Fresh prompts of exactly ``tokens`` words each, never repeated (no cache hits)."""

    def __init__(self, tokens: int, seed: int) -> None:
        self.tokens = tokens
        self.gen = torch.Generator().manual_seed(seed)

    def take(self, n: int) -> list[str]:
        ids = torch.randint(0, WORDS, (n, self.tokens), generator=self.gen)
        return [" ".join(f"w{i}" for i in row.tolist()) for row in ids]


def backbone(
    name: str,
    config: PretrainedConfig,
    device: torch.device,
    dtype: torch.dtype,
    max_length: int,
    batch_size: int,
) -> Backbone:
    with device:  # random init on the GPU itself (minutes on the CPU for the larger shapes)
        model = AutoModel.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return Backbone(
        model=model.to(device).eval(),
        tokenizer=word_tokenizer(),
        pooling="last",
        hidden_size=int(config.hidden_size),
        max_length=max_length,
        batch_size=batch_size,
        device=device,
        name=name,
    )


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        sync_device(device)
        start = time.perf_counter()
        fn()
        sync_device(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def mode_costs(
    mode: str,
    name: str,
    config: PretrainedConfig,
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
    prompts: Prompts,
) -> dict[str, Any]:
    """Score and update seconds and peak memory of one train mode on a fresh backbone."""
    reset_peak(device)
    bb = backbone(name, config, device, dtype, args.prompt_tokens + 8, args.micro_batch)
    if mode == "head":
        vm = ValueModel(bb, train_mode="head", head_fit="ridge", embedding_cache=EmbeddingCache(0))
        # Fill the replay window a little so the refit solves a real system, not an empty one.
        for _ in range(4):
            vm.update(
                prompts.take(args.batch), torch.rand(args.batch).tolist(), counts=[8] * args.batch
            )
    else:
        vm = ValueModel(bb, train_mode="full")

    counts = [8] * args.batch if mode == "head" else None

    def update() -> None:
        vm.update(prompts.take(args.batch), torch.rand(args.batch).tolist(), counts=counts)

    out = {
        f"{mode}_score_s": timed(
            lambda: vm.score(prompts.take(args.candidates)), device, args.repeats
        ),
        f"{mode}_update_s": timed(update, device, args.repeats),
        f"{mode}_peak_mib": peak_mib(device),
    }
    reset_peak(device)
    return out


def measure(
    name: str,
    config: PretrainedConfig,
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, Any]:
    prompts = Prompts(args.prompt_tokens, seed=0)
    row: dict[str, Any] = {
        "model": name,
        "hidden": int(config.hidden_size),
        "prompt_tokens": args.prompt_tokens,
        "batch": args.batch,
        "candidates": args.candidates,
    }

    bb = backbone(name, config, device, dtype, args.prompt_tokens + 8, args.micro_batch)
    row["parameters"] = sum(p.numel() for p in bb.model.parameters())
    del bb
    row |= mode_costs("head", name, config, args, device, dtype, prompts)
    row |= mode_costs("full", name, config, args, device, dtype, prompts)
    print("  measured", name, {k: v for k, v in row.items() if k.endswith("_s")}, flush=True)
    row["full_over_head_update"] = row["full_update_s"] / row["head_update_s"]
    row["head_prompts_scored_per_s"] = args.candidates / row["head_score_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny config on CPU")
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16, help="prompts per /v1/update (PCL's m)")
    parser.add_argument("--candidates", type=int, default=64, help="prompts per score (k·m)")
    parser.add_argument("--micro-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    if args.smoke:
        args.prompt_tokens, args.batch, args.candidates, args.repeats = 16, 4, 8, 2
    card = torch.cuda.get_device_name(0) if cuda else "cpu"
    rows = [measure(n, c, args, device, dtype) for n, c in configs(args.smoke).items()]
    print(
        f"device: {card}; {args.prompt_tokens}-token prompts, update of {args.batch}, "
        f"score of {args.candidates}"
    )
    print(
        f"{'model':<14} {'score ms':>9} {'head upd ms':>12} {'full upd ms':>12} "
        f"{'full/head':>10} {'head MiB':>9} {'full MiB':>9}"
    )
    for r in rows:
        mib = [
            f"{r[k]:>9.0f}" if r[k] is not None else f"{'-':>9}"
            for k in ("head_peak_mib", "full_peak_mib")
        ]
        print(
            f"{r['model']:<14} {1e3 * r['head_score_s']:>9.1f} {1e3 * r['head_update_s']:>12.1f} "
            f"{1e3 * r['full_update_s']:>12.1f} {r['full_over_head_update']:>9.1f}× "
            f"{mib[0]} {mib[1]}"
        )
    if args.smoke:
        return  # tiny shapes on CPU prove the script runs; their numbers mean nothing
    meta = {
        "device": card,
        "dtype": "bfloat16",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        **{k: v for k, v in vars(args).items()},
    }
    print(f"wrote {write_result('gpu_update_' + card.replace(' ', '_'), meta, rows)}")


if __name__ == "__main__":
    main()
