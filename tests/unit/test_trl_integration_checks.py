"""The TRL adapter refuses what it cannot serve, with errors that say what to do."""

from __future__ import annotations

from typing import Any

import pytest

trl_integration = pytest.importorskip("sweetspot_client.integrations.trl")


class _Trainer:
    """Just the attributes the construction-time check reads."""

    _metrics: dict[str, Any] = {}  # noqa: RUF012
    num_generations = 4

    def _generate_and_score_completions(self) -> None: ...
    def _calculate_rewards(self) -> None: ...
    def _save_checkpoint(self) -> None: ...
    def _load_optimizer_and_scheduler(self) -> None: ...


def test_an_unsupported_trl_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trl_integration.trl, "__version__", "2.0.0")
    with pytest.raises(RuntimeError, match=r"trl>=1.16,<2.*found 2.0.0"):
        trl_integration._check_trl(_Trainer())


def test_a_trl_without_the_hooks_is_refused() -> None:
    bare = type("Bare", (), {"_metrics": {}, "num_generations": 4})()
    with pytest.raises(RuntimeError, match="lacks"):
        trl_integration._check_trl(bare)
    trl_integration._check_trl(_Trainer())  # the real hooks pass
