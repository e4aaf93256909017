"""Balanced training on imbalanced multi-domain data ("Upsample or Upweight? Balanced Training
on Heavily Imbalanced Datasets", Li et al. 2024; docs/bibliography.md, calibration).

Domains of sizes ``n_i``. *Temperature sampling* draws domain ``i`` with probability
``p_i(τ) ∝ n_i^(1/τ)`` (``τ = 1``: proportional, ``τ → ∞``: uniform). *Upweighting*
(scalarization) samples proportionally, ``q_i = n_i / N``, and multiplies the loss of domain ``i``
by ``w_i = p_i(τ)/q_i``, so the expected loss is the same ``Σ_i p_i(τ)·L_i``: equal under full-batch
gradient descent, not under SGD (sampling has lower gradient variance but repeats the small
domains more often). *Cooldown* lowers τ during training (high τ first, then towards
proportional). The schedule is this project's convention, not the paper's: τ falls linearly
between two fractions of training (see :func:`cooldown`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch


def temperature_probs(sizes: Sequence[float], tau: float) -> np.ndarray:
    """Sampling probabilities ``p_i ∝ n_i^(1/τ)`` (``tau = inf`` gives uniform)."""
    n = np.asarray(sizes, dtype=np.float64)
    if n.ndim != 1 or n.size == 0 or (n <= 0).any():
        raise ValueError(f"sizes must be a non-empty list of positive numbers, got {sizes}")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    logw = np.log(n) / tau
    w = np.exp(logw - logw.max())
    return w / w.sum()


def upweights(sizes: Sequence[float], tau: float) -> np.ndarray:
    """Loss weights ``w_i = p_i(τ) / q_i`` for proportional sampling ``q_i = n_i / N`` (``Σ q_i w_i = 1``)."""
    return temperature_probs(sizes, tau) / temperature_probs(sizes, 1.0)


def mixture(sizes: Sequence[float], tau: float, target_tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample domains with ``p(tau)`` and weight their losses by ``p(target_tau) / p(tau)``, so the
    expected loss is always the ``target_tau`` objective: ``tau = target_tau`` is pure temperature
    sampling, ``tau = 1`` pure upweighting; a cooldown moves ``tau`` from one to the other."""
    p = temperature_probs(sizes, tau)
    return p, temperature_probs(sizes, target_tau) / p


def cooldown(tau_start: float, tau_end: float, steps: int, start: float = 0.0,
             end: float = 0.5) -> Callable[[int], float]:
    """τ(step): ``tau_start`` until ``start·steps``, linear to ``tau_end`` at ``end·steps``, then constant."""
    if not 0 <= start < end <= 1:
        raise ValueError(f"need 0 <= start < end <= 1, got {start}, {end}")

    def tau(step: int) -> float:
        f = min(max((step / steps - start) / (end - start), 0.0), 1.0)
        return tau_start + (tau_end - tau_start) * f

    return tau


def domain_batches(
    domains: Sequence[torch.Tensor],
    probs: Callable[[int], np.ndarray] | np.ndarray,
    block: int,
    batch: int,
    generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless ``(x, y, domain)`` batches of token windows: each row's domain drawn from
    ``probs(step)`` (or fixed ``probs``), its window uniformly within that domain; ``y`` is ``x``
    shifted by one token."""
    for d in domains:
        if d.numel() <= block + 1:
            raise ValueError(f"every domain needs more than block + 1 = {block + 1} tokens; one has {d.numel()}")
    offs = torch.arange(block + 1)
    step = 0
    while True:
        p = probs(step) if callable(probs) else probs
        dom = torch.multinomial(torch.as_tensor(p, dtype=torch.float64), batch, replacement=True,
                                generator=generator)
        rows = []
        for i, d in enumerate(domains):
            k = int((dom == i).sum())
            if k:
                start = torch.randint(0, d.numel() - block - 1, (k,), generator=generator)
                rows.append((torch.nonzero(dom == i).squeeze(1), d[start[:, None] + offs]))
        windows = torch.empty(batch, block + 1, dtype=domains[0].dtype)
        for where, w in rows:
            windows[where] = w
        yield windows[:, :-1], windows[:, 1:], dom
        step += 1
