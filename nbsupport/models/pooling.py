"""Pooling a sequence of features over time (shared by the sequence models)."""

from __future__ import annotations

import torch


def pool(x: torch.Tensor, how: str | None) -> torch.Tensor:
    """Pool (batch, L, d) over time: ``mean``, ``last``, or None (keep every position)."""
    if how is None:
        return x
    if how == "mean":
        return x.mean(1)
    if how == "last":
        return x[:, -1]
    raise ValueError(f"pool must be 'mean', 'last' or None, got {how!r}")
