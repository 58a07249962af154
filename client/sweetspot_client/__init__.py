"""Sweetspot client: pick the prompts your policy solves about half the time.

Depends only on ``httpx`` and ``pydantic`` so any trainer can install it without torch.
"""

from sweetspot_client._async_client import AsyncSweetspotClient
from sweetspot_client._base_client import ReportVersions, Retries
from sweetspot_client._client import SweetspotClient
from sweetspot_client._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    SweetspotError,
)
from sweetspot_client.curriculum import CurriculumBatch, PromptCurriculum
from sweetspot_client.sampling import EpochSampler
from sweetspot_client.selection import (
    SELECTION_RULES,
    SelectionRule,
    select,
    select_band,
    select_nearest,
    select_weighted,
)

__all__ = [
    "SELECTION_RULES",
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncSweetspotClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "CurriculumBatch",
    "EpochSampler",
    "NotFoundError",
    "PromptCurriculum",
    "RateLimitError",
    "ReportVersions",
    "Retries",
    "SelectionRule",
    "ServiceUnavailableError",
    "SweetspotClient",
    "SweetspotError",
    "select",
    "select_band",
    "select_nearest",
    "select_weighted",
]
__version__ = "0.1.0"
