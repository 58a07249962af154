"""One portable file per value model: ``GET /v1/runs/{name}/export``, ``PUT .../import``.

The file is a safetensors file: every tensor of ``ValueModel.state()`` (head weights, the
replay window and its statistics, the backbone's weights in full mode) as a named tensor, and
the rest in its JSON metadata under ``"sweetspot"``: the format, the backbone it was made
with (name, hidden size, feature layer, train mode, head fit), the version it was exported
at, and the state's non-tensor structure with ``{"__tensor__": name}`` where a tensor was.
Dicts are stored as key-value pairs so integer keys (an optimizer's state) survive.

What is exported is the state renumbered to version 0 (``value_model.forked_state``): an
imported run starts a log of its own, so its version must start at 0.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

FORMAT = "sweetspot-value-model/1"


class PortableFormatError(ValueError):
    """The bytes are not a Sweetspot value-model file (or not one this release reads)."""


def pack(state: dict[str, Any], about: dict[str, Any]) -> bytes:
    """``state`` (already renumbered) and ``about`` (backbone, modes, version) as bytes."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            name = f"t{len(tensors)}"
            tensors[name] = value.detach().cpu().contiguous().clone()
            return {"__tensor__": name}
        if isinstance(value, dict):
            return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        return value

    meta = {"format": FORMAT, **about, "state": encode(state)}
    return save_tensors(tensors, metadata={"sweetspot": json.dumps(meta)})


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, about) from ``pack``'s bytes; ``PortableFormatError`` for anything else."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        meta = json.loads(header["__metadata__"]["sweetspot"])
        if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
            raise TypeError("the metadata is not an object holding a state")
        tensors = load_tensors(data)
    except Exception as exc:  # truncated, not safetensors, no metadata: all mean "not ours"
        raise PortableFormatError(
            f"not a Sweetspot value-model file ({type(exc).__name__}): export one with "
            "GET /v1/runs/{name}/export or `sweetspot export`"
        ) from exc
    if meta.get("format") != FORMAT:
        raise PortableFormatError(
            f"value-model file format {meta.get('format')!r}; this service reads {FORMAT!r}"
        )

    def decode(value: Any) -> Any:
        if isinstance(value, dict) and "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if isinstance(value, dict) and "__dict__" in value:
            return {_key(decode(k)): decode(v) for k, v in value["__dict__"]}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    try:
        state = decode(meta.pop("state"))
    except (KeyError, TypeError, ValueError) as exc:  # a tensor named but not stored, say
        raise PortableFormatError(f"the file's state does not decode ({exc!r})") from exc
    if not isinstance(state, dict):
        raise PortableFormatError("the file's state is not a value model's state")
    return state, meta


def _key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key
