"""What vLLM's processes log at each trainer ``--log-level`` (the environment they are given)."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweetspot_trainer.rollout.vllm_engine import (
    RELOAD_LOGGER,
    VLLM_LOGGING_VARIABLES,
    vllm_logging,
)


@pytest.fixture(autouse=True)
def no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VLLM_LOGGING_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def vllm_loggers() -> Iterator[None]:
    """Put the ``vllm`` loggers back as they were after a test applies vLLM's config here."""
    names = ["vllm", RELOAD_LOGGER]
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    yield
    for name, (level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers.clear()
        logger.filters.clear()


@pytest.mark.parametrize("level", ["info", "warning", "error"])
def test_below_debug_vllm_logs_errors_only(level: str, tmp_path: Path) -> None:
    env = vllm_logging(level, tmp_path / "logging.json")
    assert env["VLLM_LOGGING_LEVEL"] == "ERROR"
    assert env["VLLM_CONFIGURE_LOGGING"] == "1"
    assert Path(env["VLLM_LOGGING_CONFIG_PATH"]).exists()
    assert env["TORCH_CPP_LOG_LEVEL"] == "ERROR"  # the NUMA notice of vLLM's CPU workers
    assert "reduce_op" in env["PYTHONWARNINGS"]


def test_debug_leaves_vllm_alone(tmp_path: Path) -> None:
    assert vllm_logging("debug", tmp_path / "logging.json") == {}
    assert not (tmp_path / "logging.json").exists()


def test_a_users_own_vllm_logging_settings_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")
    assert vllm_logging("info", tmp_path / "logging.json") == {}


def test_the_config_keeps_failed_reloads_but_the_expected_rotary_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vllm_loggers: None
) -> None:
    """Applied as vLLM's processes apply it: only a real failed weight reload gets through."""
    env = vllm_logging("info", tmp_path / "logging.json")
    logging.config.dictConfig(json.loads(Path(env["VLLM_LOGGING_CONFIG_PATH"]).read_text()))
    reload = logging.getLogger(f"{RELOAD_LOGGER}.layerwise")
    logging.getLogger("vllm.platforms.cpu").warning("Triton is not installed.")
    reload.warning("%s: Failed to load weights", "RotaryEmbedding")
    reload.warning("%s: Failed to load weights", "ParallelLMHead")
    logging.getLogger("vllm.engine").error("engine died")
    assert capsys.readouterr().err.splitlines() == [
        f"WARNING {RELOAD_LOGGER}.layerwise: ParallelLMHead: Failed to load weights",
        "ERROR vllm.engine: engine died",
    ]
