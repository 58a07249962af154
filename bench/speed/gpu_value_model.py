"""Value-model scoring speed on a GPU: prompts/s and model FLOP utilisation (MFU).

    python bench/speed/gpu_value_model.py                    # on a GPU machine (device tool)
    python bench/speed/gpu_value_model.py --smoke            # tiny shapes on CPU: checks the script

The backbones are built from real architecture configs (Qwen3-0.6B, Qwen3-1.7B,
Llama-3.2-3B shapes) with random weights: speed does not depend on the values, and no
weights can be downloaded. Each prompt length runs the service's hot path
(``Backbone.embed_batch``: forward + last-token pooling) on full batches of random tokens.

MFU = 2 × non-embedding parameters × tokens / time / peak, with the peak both from the
card's datasheet (dense bf16) and from a large matmul timed in the same run. Attention's
own FLOPs (4 × layers × T² × hidden per prompt) are reported separately.
Writes bench/results/gpu_value_model_<device>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, LlamaConfig, PretrainedConfig, Qwen3Config

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import gemm_peak, non_embedding_parameters, sync_device, write_result

from sweetspot_service.backbone import Backbone

# Dense bf16 tensor-core peaks from the datasheets (FLOP/s), without sparsity.
DATASHEET_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def configs(smoke: bool) -> dict[str, PretrainedConfig]:
    if smoke:
        return {
            "tiny-qwen3": Qwen3Config(
                vocab_size=1000,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                head_dim=16,
            )
        }
    return {
        "Qwen3-0.6B": _qwen3(hidden=1024, intermediate=3072),
        "Qwen3-1.7B": _qwen3(hidden=2048, intermediate=6144),
        "Llama-3.2-3B": LlamaConfig(
            vocab_size=128256,
            hidden_size=3072,
            intermediate_size=8192,
            num_hidden_layers=28,
            num_attention_heads=24,
            num_key_value_heads=8,
            head_dim=128,
            max_position_embeddings=131072,
            tie_word_embeddings=True,
        ),
    }


def _qwen3(*, hidden: int, intermediate: int) -> Qwen3Config:
    """Qwen3 dense shapes: 28 layers, 16 query / 8 KV heads of 128 (0.6B and 1.7B)."""
    return Qwen3Config(
        vocab_size=151936,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        tie_word_embeddings=True,
    )


def measure(
    name: str,
    config: PretrainedConfig,
    *,
    device: torch.device,
    dtype: torch.dtype,
    lengths: list[int],
    tokens_per_batch: int,
    repeats: int,
) -> list[dict[str, Any]]:
    attn = "sdpa"
    with device:  # random init on the GPU itself: a 3B model's init on the CPU takes minutes
        model = AutoModel.from_config(config, dtype=dtype, attn_implementation=attn).eval()
    backbone = Backbone(
        model=model,
        tokenizer=None,  # type: ignore[arg-type]  # batches below are token ids already
        pooling="last",
        hidden_size=config.hidden_size,
        max_length=max(lengths),
        batch_size=0,
        device=device,
        name=name,
    )
    params = sum(p.numel() for p in model.parameters())
    dense = non_embedding_parameters(model)
    rows = []
    for length in lengths:
        batch = max(1, tokens_per_batch // length)
        ids = torch.randint(0, config.vocab_size, (batch, length), device=device)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        with torch.inference_mode():
            for _ in range(2):
                backbone.embed_batch(inputs)
            sync_device(device)
            start = time.perf_counter()
            for _ in range(repeats):
                backbone.embed_batch(inputs)
            sync_device(device)
        seconds = (time.perf_counter() - start) / repeats
        print(f"  measured {name} at {length} tokens: {batch / seconds:.1f} prompts/s", flush=True)
        tokens = batch * length
        attention = 4 * config.num_hidden_layers * length**2 * config.hidden_size * batch
        rows.append(
            {
                "model": name,
                "prompt_tokens": length,
                "batch": batch,
                "parameters": params,
                "non_embedding_parameters": dense,
                "seconds_per_batch": seconds,
                "prompts_per_s": batch / seconds,
                "tokens_per_s": tokens / seconds,
                "model_flops_per_s": 2 * dense * tokens / seconds,
                "attention_flops_per_s": attention / seconds,
            }
        )
    del model, backbone
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny config on CPU")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--tokens-per-batch", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16
    if args.smoke:
        args.lengths, args.tokens_per_batch, args.repeats = [16, 32], 256, 2
    card = torch.cuda.get_device_name(0) if cuda else "cpu"
    datasheet = next((v for k, v in DATASHEET_PEAK.items() if k in card), None)
    measured_peak = gemm_peak(
        dtype, device=device, size=8192 if cuda else 512, repeats=20, warmup=3
    )
    rows: list[dict[str, Any]] = []
    for name, config in configs(args.smoke).items():
        rows += measure(
            name,
            config,
            device=device,
            dtype=dtype,
            lengths=args.lengths,
            tokens_per_batch=args.tokens_per_batch,
            repeats=args.repeats,
        )
    for r in rows:
        r["mfu_vs_measured_gemm"] = r["model_flops_per_s"] / measured_peak
        r["mfu_vs_datasheet"] = r["model_flops_per_s"] / datasheet if datasheet else None
    print(f"device: {card}; bf16 GEMM measured {measured_peak / 1e12:.1f} TFLOP/s")
    header = f"{'model':<14} {'tokens':>6} {'batch':>5} {'prompts/s':>10}"
    print(f"{header} {'MFU meas':>9} {'MFU spec':>9}")
    for r in rows:
        spec = f"{100 * r['mfu_vs_datasheet']:>8.1f}%" if r["mfu_vs_datasheet"] else "        -"
        print(
            f"{r['model']:<14} {r['prompt_tokens']:>6} {r['batch']:>5} "
            f"{r['prompts_per_s']:>10.1f} {100 * r['mfu_vs_measured_gemm']:>8.1f}% {spec}"
        )
    if args.smoke:
        return  # tiny shapes on CPU prove the script runs; their numbers mean nothing
    slug = card.replace(" ", "_")
    meta = {
        "device": card,
        "dtype": "bfloat16",
        "torch": torch.__version__,
        "measured_gemm_peak_flops_per_s": measured_peak,
        "datasheet_peak_flops_per_s": datasheet,
    }
    print(f"wrote {write_result(f'gpu_value_model_{slug}', meta, rows)}")


if __name__ == "__main__":
    main()
