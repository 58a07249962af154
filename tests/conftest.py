"""Markers come from the folder a test lives in: tests/{unit,integration,e2e,reliability}."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from sweetspot_service.testing import RedisServer

ReadOnly = Callable[[Path], AbstractContextManager[None]]

_FOLDERS = {"unit", "integration", "e2e", "reliability"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = set(Path(str(item.path)).relative_to(config.rootpath).parts)
        for folder in _FOLDERS & parts:
            item.add_marker(getattr(pytest.mark, folder))


def _save_tiny(model_dir: Path, config: object, tokenizer_source: str) -> Path:
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from sweetspot_service.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer_source))
    causal = "ForCausalLM" in (getattr(config, "architectures", None) or [""])[0]
    factory = AutoModelForCausalLM if causal else AutoModel
    torch.manual_seed(0)  # random weights, but the same ones every session
    model = factory.from_config(config)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, durable redis-server of our own (killable, restartable) for one test."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer and chat template, random weights."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        architectures=["LlamaForCausalLM"],
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return _save_tiny(tmp_path_factory.mktemp("tiny-llama"), config, "smollm2")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT encoder with MiniLM's tokenizer, random weights."""
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        architectures=["BertModel"],
    )
    return _save_tiny(tmp_path_factory.mktemp("tiny-bert"), config, "minilm")


@contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """Every folder under ``folder`` read-only (``chattr +i`` as root, which ignores modes).
    Skips the test where neither can stop a removal."""
    folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
    as_root = os.geteuid() == 0
    try:
        for path in folders:
            if as_root:
                chattr = shutil.which("chattr")
                done = chattr and subprocess.run([chattr, "+i", str(path)], check=False)
                if not done or done.returncode != 0:
                    pytest.skip("cannot make a folder read-only for root here (no chattr +i)")
            else:
                path.chmod(0o555)
        probe = folder / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("this file system ignores read-only folders")
        yield
    finally:
        for path in folders:
            if as_root:
                subprocess.run(["chattr", "-i", str(path)], check=False)
            else:
                path.chmod(0o755)


@pytest.fixture
def read_only_folder() -> ReadOnly:
    """``with read_only_folder(path):`` nothing under ``path`` can be removed or added."""
    return _read_only
