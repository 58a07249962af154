"""Trainer integrations. The shared part (``core``) needs only the client's dependencies;
each trainer's module (``trl``) imports its trainer and is installed with an extra:
``pip install 'sweetspot-client[trl]'``.
"""

from sweetspot_client.integrations.core import (
    Selection,
    SweetspotConfig,
    TrainerCurriculum,
    default_prompt_text,
    group_rewards,
)
from sweetspot_client.reporter import BackgroundReporter, PendingReport

__all__ = [
    "BackgroundReporter",
    "PendingReport",
    "Selection",
    "SweetspotConfig",
    "TrainerCurriculum",
    "default_prompt_text",
    "group_rewards",
]
