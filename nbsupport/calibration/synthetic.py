"""Data with a controlled class overlap, for the limits of temperature scaling
(Chidambaram & Ge 2023, "On the Limitations of Temperature Scaling for Distributions with Overlaps").

- :func:`gaussian_classes`: class ``k`` has mean ``e_k`` (the k-th standard basis vector, so
  every pair of means is ``√2`` apart) and covariance ``σ²·I`` in ``dim >= classes`` dimensions;
  ``σ`` sets the overlap. The Bayes posterior is ``softmax(x_{1..K} / σ²)``.
- :func:`bayes_accuracy` and :func:`sigma_for_bayes_accuracy`: the Bayes classifier's accuracy
  on these classes, ``∫ φ(u)·Φ(u + 1/σ)^(K-1) du`` (the true class's coordinate ``1 + σu``
  must beat ``K - 1`` independent ``N(0, σ²)`` coordinates), and the ``σ`` giving a target
  accuracy, so the number of classes can grow at a fixed Bayes error;
- :func:`noisy_labels`: symmetric label noise, each label replaced with probability ``rate``
  by a uniformly drawn *other* class (overlap in label space).
"""

from __future__ import annotations

import math

import torch
from scipy import integrate, optimize, stats


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


def bayes_accuracy(classes: int, sigma: float) -> float:
    """Accuracy of the Bayes classifier on :func:`gaussian_classes` (any ``dim``): by quadrature,
    ``∫ φ(u)·Φ(u + 1/σ)^(K-1) du``."""
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    value, _ = integrate.quad(lambda u: stats.norm.pdf(u) * stats.norm.cdf(u + 1 / sigma) ** (classes - 1),
                              -math.inf, math.inf, epsabs=1e-12)
    return float(value)


def sigma_for_bayes_accuracy(classes: int, accuracy: float) -> float:
    """The ``σ`` at which :func:`bayes_accuracy` ``(classes, σ)`` equals ``accuracy`` (in ``(1/K, 1)``)."""
    if not 1 / classes < accuracy < 1:
        raise ValueError(f"accuracy must lie strictly between chance 1/{classes} and 1, got {accuracy}")
    return float(optimize.brentq(lambda s: bayes_accuracy(classes, s) - accuracy, 1e-3, 1e3, xtol=1e-12))
