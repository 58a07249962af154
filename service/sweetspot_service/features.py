"""Feature runs: the trainer sends each prompt's feature vector instead of the service
computing one from the prompt's text.

A run created with ``feature_width`` W (``POST /v1/runs``) has no backbone: every score,
select and update of it carries ``features``, one vector of W numbers per prompt (for
example the policy's own pooled prefill hidden states, which know what *this* policy finds
hard). Its value model (``ValueModel.for_features``) LayerNorms each vector as it does a
backbone's features and fits the same ridge head, novelty and per-prompt posterior on
them. The prompts still identify each prompt: its rewards, statistics, calibration and the
selection's indices are keyed by the prompt text, as in a text run.

``SuppliedFeatures`` stands where a text run's ``Backbone`` stands in the value model: it
gives the width and a CPU device, and refuses to compute features itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SuppliedFeatures:
    """The feature source of a feature run: only what the caller sends, W numbers a prompt."""

    layer: int | None = None
    autocast_dtype: torch.dtype | None = None

    def __init__(self, width: int) -> None:
        if width < 1:
            raise ValueError(f"a feature run needs feature_width >= 1, got {width}")
        self.hidden_size = width
        self.device = torch.device("cpu")
        self.model = nn.Module()  # no weights: nothing to train, freeze or checkpoint

    def embed(self, prompts: list[str]) -> Tensor:
        raise ValueError(
            f"this value model reads the feature vectors sent with the prompts (width "
            f"{self.hidden_size}); it cannot featurise {len(prompts)} prompt texts itself"
        )
