"""Data with a controlled class overlap, for the limits of temperature scaling
(Chidambaram & Ge 2023, "On the Limitations of Temperature Scaling for Distributions with Overlaps").

- :func:`gaussian_classes`: class ``k`` has mean ``e_k`` (the k-th standard basis vector, so
  every pair of means is ``√2`` apart) and covariance ``σ²·I`` in ``dim >= classes`` dimensions;
  ``σ`` sets the overlap. The Bayes posterior is ``softmax(x_{1..K} / σ²)``.
- :func:`noisy_labels`: symmetric label noise, each label replaced with probability ``rate``
  by a uniformly drawn *other* class (overlap in label space).
"""

from __future__ import annotations

import torch


def gaussian_classes(n: int, classes: int, dim: int, sigma: float,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X (n, dim) float32, y (n,) int64, Bayes posterior (n, classes) float64)``."""
    if dim < classes:
        raise ValueError(f"dim={dim} must be >= classes={classes}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    y = torch.randint(0, classes, (n,), generator=generator)
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64) * sigma
    x[torch.arange(n), y] += 1.0
    posterior = torch.softmax(x[:, :classes] / sigma**2, dim=1)
    return x.float(), y, posterior


def noisy_labels(y: torch.Tensor, rate: float, classes: int, generator: torch.Generator) -> torch.Tensor:
    """``y`` with a fraction ``rate`` of labels (chosen at random) moved to a random other class."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    flip = torch.rand(y.shape, generator=generator) < rate
    shift = torch.randint(1, classes, y.shape, generator=generator)
    return torch.where(flip, (y + shift) % classes, y)
