"""Balanced training on imbalanced domains on the shared loop (:func:`nbsupport.train.fit`):
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
from nbsupport.train import fit_in_place


def weighted_sampler(domains: Sequence[torch.Tensor], sizes: Sequence[float], tau_of: Callable[[int], float],
                     *, context: int, batch: int, reweight: bool, target_tau: float = math.inf,
                     ) -> Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A batch sampler for :func:`nbsupport.train.fit`: ``sample(step, generator)`` gives
    ``(windows (batch, context), next token (batch,), loss weight (batch,))`` for update ``step``
    (1, 2, ...): domains drawn with ``p(tau_of(step - 1))``, weights ``p(target_tau) / p(tau)``
    if ``reweight`` else 1."""
    for d in domains:
        if d.numel() <= context + 1:
            raise ValueError(f"every domain needs more than context + 1 = {context + 1} tokens; one has {d.numel()}")

    def sample(step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p, w = mixture(sizes, tau_of(step - 1), target_tau)
        w = w if reweight else np.ones_like(w)
        x, y, d = next(domain_batches(domains, p, context, batch, generator))
        return x, y[:, -1], torch.as_tensor(w, dtype=torch.float32)[d]

    return sample


def weighted_batches(domains: Sequence[torch.Tensor], sizes: Sequence[float], tau_of: Callable[[int], float],
                     *, context: int, batch: int, generator: torch.Generator, reweight: bool,
                     target_tau: float = math.inf) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The batches of :func:`weighted_sampler` as an endless iterator (steps 1, 2, ...), e.g. for
    :func:`gradient_variance`; ``tau_of`` is read at 0, 1, ..."""
    sample = weighted_sampler(domains, sizes, tau_of, context=context, batch=batch, reweight=reweight,
                              target_tau=target_tau)
    step = 1
    while True:
        yield sample(step, generator)
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
    """Train ``model`` in place by Adam on :func:`weighted_cross_entropy` over
    :func:`weighted_sampler` (data order from ``seed``, through :func:`nbsupport.train.fit_in_place`);
    returns the loop's log (rows with ``eval_fn``'s values where it ran)."""
    sample = weighted_sampler(domains, sizes, tau_of, context=context, batch=batch, reweight=reweight)
    return fit_in_place(model, sample, seed=seed, steps=steps, loss=weighted_cross_entropy, optimizer="adam", lr=lr,
                        eval_fn=eval_fn, eval_every=eval_every, progress=progress, desc=desc)


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
