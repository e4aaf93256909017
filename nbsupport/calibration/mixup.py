"""Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization").

A batch becomes ``λ·x + (1-λ)·x[perm]`` with soft targets ``λ·onehot(y) + (1-λ)·onehot(y[perm])``,
``λ ~ Beta(α, α)`` drawn once per batch. Chidambaram & Ge (2023) show that Mixup training stays
calibrated where ERM + temperature scaling cannot (overlapping class supports).
Train with ``torch.nn.functional.cross_entropy(logits, soft_targets)`` (probability targets).
"""

from __future__ import annotations

import numpy as np
import torch


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    alpha: float = 1.0,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Return ``(mixed inputs, soft targets (n, num_classes), λ)``; ``alpha = 0`` leaves the batch as is."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if x.shape[0] != y.shape[0] or y.ndim != 1:
        raise ValueError(f"x and y must share the batch dimension; got {tuple(x.shape)} and {tuple(y.shape)}")
    rng = rng if rng is not None else np.random.default_rng()
    onehot = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)
    if alpha == 0:
        return x, onehot, 1.0
    lam = float(rng.beta(alpha, alpha))
    perm = torch.as_tensor(rng.permutation(x.shape[0]), device=x.device)
    return lam * x + (1 - lam) * x[perm], lam * onehot + (1 - lam) * onehot[perm], lam
