"""The value model's encoder: a transformers backbone that turns prompts into vectors.

Causal LMs are pooled at the last non-pad token (the position that has seen the whole
prompt); encoders are mean-pooled over real tokens. The features come from the last layer,
or from the output of transformer block ``layer`` (1-based: ``hidden_states[layer]`` in
transformers' numbering, embeddings being 0); then the blocks after it are dropped, so a
middle layer also halves the forward pass (SmolLM2's layer 15 of 30). Prompts are
tokenised with right padding and run in length-sorted micro-batches so little compute goes
to padding.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from sweetspot_service.models import resolve_model

Pooling = Literal["last", "mean"]


@dataclass
class Backbone:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    pooling: Pooling
    hidden_size: int
    max_length: int
    batch_size: int
    device: torch.device
    name: str
    # Set when the weights are kept in float32 for training (full mode) but the hardware
    # computes bf16 natively: forward passes then run under autocast to this dtype.
    autocast_dtype: torch.dtype | None = None
    layer: int | None = None
    """Block whose output is pooled (1-based); None: the model's last hidden state."""
    _captured: list[Tensor] = field(default_factory=list, repr=False)

    @classmethod
    def load(
        cls,
        name_or_path: str,
        *,
        pooling: Literal["auto", "last", "mean"] = "auto",
        dtype: str = "auto",
        device: str = "cpu",
        max_length: int = 512,
        batch_size: int = 32,
        cache_dir: Path | None = None,
        layer: int | None = None,
    ) -> Backbone:
        # The Rust tokenizer's own thread pool competes with torch's OpenMP threads for the
        # same cores (measured: MiniLM scoring 600 -> 825 prompts/s through HTTP on 2 cores
        # with it off). Tokenising a batch is a small share of a score; keep it serial unless
        # the operator says otherwise.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        path = resolve_model(name_or_path, cache_dir=cache_dir)
        config = AutoConfig.from_pretrained(path)
        causal = _is_causal(config)
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "right"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError(f"{name_or_path}: tokenizer has neither a pad nor an eos token")
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModel.from_pretrained(
            path, dtype=resolve_dtype(dtype, device), attn_implementation="sdpa"
        )
        model.to(device).eval()
        resolved: Pooling = ("last" if causal else "mean") if pooling == "auto" else pooling
        backbone = cls(
            model=model,
            tokenizer=tokenizer,
            pooling=resolved,
            hidden_size=int(config.hidden_size),
            max_length=max_length,
            batch_size=batch_size,
            device=torch.device(device),
            name=name_or_path,
        )
        if layer is not None:
            backbone._read_layer(layer)
        return backbone

    def _read_layer(self, layer: int) -> None:
        """Pool block ``layer``'s output and drop the blocks after it (frozen use only)."""
        blocks = _blocks(self.model)
        if not 1 <= layer <= len(blocks):
            raise ValueError(
                f"{self.name} has {len(blocks)} transformer blocks: feature_layer must be "
                f"1..{len(blocks)} (or unset for the last hidden state), got {layer}"
            )
        self.layer = layer
        keep = nn.ModuleList(list(blocks)[:layer])
        _replace_blocks(self.model, blocks, keep)
        keep[layer - 1].register_forward_hook(self._capture)

    def _capture(self, _module: nn.Module, _args: object, output: object) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        assert isinstance(hidden, Tensor)
        self._captured[:] = [hidden]

    def micro_batches(self, prompts: list[str]) -> Iterator[tuple[list[int], dict[str, Tensor]]]:
        """Yield (positions in ``prompts``, padded batch) in length-sorted micro-batches.

        Tokenises once; each micro-batch is padded only to its own longest prompt.
        """
        ids: list[list[int]] = self.tokenizer(prompts, truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
        pad = int(self.tokenizer.pad_token_id)
        for start in range(0, len(order), self.batch_size):
            positions = order[start : start + self.batch_size]
            width = len(ids[positions[-1]])
            input_ids = torch.full((len(positions), width), pad, dtype=torch.long)
            mask = torch.zeros((len(positions), width), dtype=torch.long)
            for row, i in enumerate(positions):
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            yield (
                positions,
                {
                    "input_ids": input_ids.to(self.device),
                    "attention_mask": mask.to(self.device),
                },
            )

    def embed_batch(self, batch: dict[str, Tensor]) -> Tensor:
        """Pooled features of one tokenised batch: [B, T] ids -> [B, H] float32."""
        with torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden: Tensor = out.last_hidden_state if self.layer is None else self._captured.pop()
        # hidden: [B, T, H]
        mask = batch["attention_mask"]  # [B, T]
        if self.pooling == "last":
            last = mask.sum(dim=1) - 1  # [B] index of the last real token (right padding)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return pooled.float()

    def embed(self, prompts: list[str]) -> Tensor:
        """Features of ``prompts`` in their given order: [N] -> [N, H], no gradient."""
        out = torch.empty(len(prompts), self.hidden_size)
        with torch.inference_mode():
            for positions, batch in self.micro_batches(prompts):
                out[positions] = self.embed_batch(batch).cpu()
        return out


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``'auto'`` -> bfloat16 where it is computed natively (SmolLM2 scores 2.8× as many
    prompts/s as in float32 on the AVX512-BF16 CPU here: bench/results/score_throughput_smollm2
    and …_float32.json), else float32; other names map to the torch dtype."""
    if dtype != "auto":
        return getattr(torch, dtype)  # type: ignore[no-any-return]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _is_causal(config: object) -> bool:
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") for a in architectures):
        return True
    return bool(getattr(config, "is_decoder", False))


def _blocks(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer blocks: the longest ModuleList (Llama's ``layers``,
    BERT's ``encoder.layer``)."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no list of transformer blocks to read")
    return max(lists, key=len)


def _replace_blocks(model: nn.Module, old: nn.ModuleList, new: nn.ModuleList) -> None:
    for parent in model.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new)
                return
