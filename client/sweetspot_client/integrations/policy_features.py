"""The policy's own hidden states as a feature run's vectors (``features="policy"``).

A prompt's vector is what the policy itself makes of the prompt: one forward pass of the
prompt's tokens through the policy (its *prefill*, without generating), and the mean over
those tokens of the hidden state after block ``layer``. This is the lever of POISE
(arXiv 2605.07579) and of "LLMs encode how difficult problems are" (arXiv 2510.18147): a
policy's middle-to-late layers encode how likely it is to solve a problem, and, unlike a
frozen text encoder's, they move with the policy as it trains.

Why these choices:
- *Block ``2L/3`` by default* (``default_layer``; SmolLM2-135M: block 20 of 30). The last
  hidden state is shaped for the next token's logits; difficulty probes of the papers above
  peak in the middle-to-late blocks, and on this project's chain_sum a ridge on SmolLM2's
  blocks 15 and 23 ranked held-out prompts as well as or better than on its last one
  (FACTS.md). Pass ``layer`` to choose another (an index into ``hidden_states``: 0 is the
  embeddings, ``L`` the last block).
- *Mean over the prompt's tokens*: every token of the problem contributes, and it does not
  depend on how the chat template ends the prompt.
- *Exactly the tokens the policy trains on*: the caller passes token ids made as its trainer
  makes them (the bundled trainer's chat template, TRL's ``apply_chat_template``), so the
  vector describes the input the rewards were observed on.
- *Cheap and bounded*: ``torch.no_grad``, eval mode (restored afterwards), the base model
  only (no vocabulary projection), batches of ``batch_size`` prompts sorted by length, at most
  ``max_tokens`` tokens per prompt (the last ones: the problem sits at the end of a chat
  prompt). The cost is one prefill of the ``k·m`` candidates per step; the trainers record it.

Needs ``torch`` (imported here; the integrations that use it already need it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["default_layer", "hidden_width", "prefill_features"]


def _text_config(model: Any) -> Any:
    config = model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def hidden_width(model: Any) -> int:
    """The width of the model's hidden states: a feature run's ``feature_width``."""
    return int(_text_config(model).hidden_size)


def default_layer(model: Any) -> int:
    """The ``hidden_states`` index pooled by default: two thirds of the blocks, at least 1."""
    return max(1, round(2 * int(_text_config(model).num_hidden_layers) / 3))


def prefill_features(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    layer: int | None = None,
    batch_size: int = 16,
    max_tokens: int = 1024,
) -> Tensor:
    """[N] prompts' token ids -> [N, hidden] float32 on the CPU: the mean over each prompt's
    tokens of ``hidden_states[layer]`` (default ``default_layer(model)``).

    ``model`` is a causal LM (``transformers``), unwrapped from any distributed wrapper, with
    all of its weights on this process. Rows are right-padded with ``pad_id`` (masked out), so
    each prompt's positions start at 0 as in an unpadded pass.
    """
    if batch_size < 1 or max_tokens < 1:
        raise ValueError(f"batch_size and max_tokens must be >= 1, got {batch_size}, {max_tokens}")
    layers = int(_text_config(model).num_hidden_layers)
    layer = default_layer(model) if layer is None else layer
    if not 0 <= layer <= layers:
        raise ValueError(f"layer must be between 0 and the model's {layers} blocks, got {layer}")
    rows = [list(ids)[-max_tokens:] for ids in token_ids]
    if any(not ids for ids in rows):
        raise ValueError("every prompt needs at least one token")
    out = torch.empty((len(rows), hidden_width(model)), dtype=torch.float32)
    if not rows:
        return out
    base = getattr(model, "base_model", model)  # no vocabulary projection: hidden states only
    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # less padding per batch
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                width = max(len(rows[i]) for i in chunk)
                ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for j, i in enumerate(chunk):
                    ids[j, : len(rows[i])] = torch.tensor(rows[i])
                    mask[j, : len(rows[i])] = 1
                ids, mask = ids.to(device), mask.to(device)
                hidden = base(
                    input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False
                ).hidden_states[layer]  # [B, T, hidden]
                weights = mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)  # [B, hidden]
                out[torch.tensor(chunk)] = pooled.float().cpu()
    finally:
        model.train(was_training)
    return out
