"""Balanced training on imbalanced domains on the shared loop (:func:`nbsupport.train.train`):
temperature sampling, upweighting and cooldown ("Upsample or Upweight? Balanced Training on
Heavily Imbalanced Datasets", 2024), and the variance of the minibatch gradient each one gives.

Every step draws a batch of token windows whose domains follow ``p(τ(step))`` and weights each
example's loss by ``p(target_τ) / p(τ)`` (:func:`~nbsupport.calibration.sampling.mixture`) when
``reweight`` is set, else by 1. Sampling (``τ = target_τ``) and upweighting (``τ = 1`` with
weights) have the same expected gradient; the paper explains sampling's faster start by its
lower gradient variance, which :func:`gradient_variance` measures directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from nbsupport.calibration.sampling import domain_batches, mixture
from nbsupport.train import train


def weighted_batches(domains: Sequence[torch.Tensor], sizes: Sequence[float], tau_of: Callable[[int], float],
                     *, context: int, batch: int, generator: torch.Generator, reweight: bool,
                     target_tau: float = math.inf) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless ``(windows (batch, context), next token (batch,), loss weight (batch,))``: domains
    drawn with ``p(tau_of(step))``, weights ``p(target_tau) / p(tau)`` if ``reweight`` else 1."""
    step = 0
    while True:
        p, w = mixture(sizes, tau_of(step), target_tau)
        w = w if reweight else np.ones_like(w)
        x, y, d = next(domain_batches(domains, p, context, batch, generator))
        yield x, y[:, -1], torch.as_tensor(w, dtype=torch.float32)[d]
        step += 1


def weighted_cross_entropy(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``mean_i w_i · CE(model(x_i), y_i)`` for a ``(x, y, w)`` batch."""
    x, y, w = batch
    return (F.cross_entropy(model(x), y, reduction="none") * w).mean()


def train_domains(model: torch.nn.Module, domains: Sequence[torch.Tensor], sizes: Sequence[float],
                  tau_of: Callable[[int], float], *, reweight: bool, steps: int, context: int, seed: int,
                  batch: int = 128, lr: float = 2e-3,
                  eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
                  eval_every: int | None = None, progress: bool = False, desc: str = "domains") -> pd.DataFrame:
    """Adam on :func:`weighted_cross_entropy` over :func:`weighted_batches` (data order from
    ``seed``); returns the loop's log (rows with ``eval_fn``'s values where it ran)."""
    gen = torch.Generator().manual_seed(seed)
    batches = weighted_batches(domains, sizes, tau_of, context=context, batch=batch, generator=gen,
                               reweight=reweight)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return train(model, batches, weighted_cross_entropy, opt, steps, eval_fn=eval_fn, eval_every=eval_every,
                 progress=progress, desc=desc)


def gradient_variance(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, object], torch.Tensor],
                      batches: Iterator, n_batches: int) -> float:
    """Total variance of the minibatch gradient at the model's current parameters,
    ``E‖g_B - E g_B‖²`` (the trace of its covariance), estimated without bias from
    ``n_batches`` batches: ``Σ_b ‖g_b - ḡ‖² / (n_batches - 1)``. Parameters are left unchanged."""
    if n_batches < 2:
        raise ValueError(f"n_batches must be >= 2 to estimate a variance, got {n_batches}")
    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for _ in range(n_batches):
        g = torch.autograd.grad(loss_fn(model, next(batches)), params, allow_unused=True)
        grads.append(torch.cat([(torch.zeros_like(p) if gi is None else gi).flatten().double()
                                for p, gi in zip(params, g, strict=True)]))
    G = torch.stack(grads)
    return float(((G - G.mean(0)) ** 2).sum() / (n_batches - 1))
