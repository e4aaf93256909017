"""TempNet (Qiu et al. 2024, "To Cool or not to Cool? Temperature Network Meets Large Foundation
Models via DRO"): a small head predicting a per-input temperature from the logits.

The robust loss for a token with logits ``z`` (V classes) and label ``y`` at temperature ``τ``
(the dual of KL-constrained distributionally robust optimization, the paper's §3; written
here per token over the V classes with a uniform reference distribution):

    L(τ) = τ·log((1/V)·Σ_k exp((z_k - z_y)/τ)) + τ·ρ.

Its derivative is ``dL/dτ = ρ - KL(softmax((z - z_y)/τ) ‖ uniform)``, so the per-token optimum
makes the reweighted distribution sit at KL distance ``ρ`` from uniform; TempNet learns to
predict it from the logits alone. Inputs: the log-probabilities ``log_softmax(z)`` sorted in
decreasing order and clipped at ``-clip`` (a normalization of the logits that keeps their scale
and does not depend on which token is which, since the optimum depends only on their spread).
Output: ``τ = τ_min + (τ_max - τ_min)·sigmoid(mlp(features))``.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn

from nbsupport.train import fit_in_place


def dro_loss(logits: torch.Tensor, target: torch.Tensor, tau: torch.Tensor, rho: float) -> torch.Tensor:
    """Mean of ``τ·log((1/V) Σ_k exp((z_k - z_y)/τ)) + τ·ρ`` over tokens; ``tau`` broadcasts to (N,)."""
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, V) and target (N,); got {tuple(logits.shape)}, {tuple(target.shape)}")
    tau = tau.reshape(-1).expand(logits.shape[0]) if tau.numel() == 1 else tau.reshape(-1)
    if (tau <= 0).any():
        raise ValueError("tau must be positive")
    shifted = (logits - logits.gather(1, target[:, None])) / tau[:, None]
    per_token = tau * (torch.logsumexp(shifted, dim=1) - math.log(logits.shape[1])) + tau * rho
    return per_token.mean()


class TempNet(nn.Module):
    """Per-input temperature in ``[tau_min, tau_max]`` from the logits (see module docstring)."""

    def __init__(self, vocab_size: int, hidden: int = 64, tau_min: float = 0.1, tau_max: float = 3.0,
                 clip: float = 20.0) -> None:
        super().__init__()
        if not 0 < tau_min < tau_max:
            raise ValueError(f"need 0 < tau_min < tau_max, got {tau_min}, {tau_max}")
        self.tau_min, self.tau_max, self.clip = tau_min, tau_max, clip
        self.mlp = nn.Sequential(nn.Linear(vocab_size, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def features(self, logits: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits.detach().float(), dim=-1)
        return logp.sort(dim=-1, descending=True).values.clamp_min(-self.clip) / self.clip

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Temperatures with the logits' leading shape (``(..., V) -> (...)``)."""
        s = torch.sigmoid(self.mlp(self.features(logits)).squeeze(-1))
        return self.tau_min + (self.tau_max - self.tau_min) * s


def fit_tempnet(tempnet: TempNet, logits: torch.Tensor, target: torch.Tensor, rho: float, steps: int, *,
                batch: int = 4096, lr: float = 3e-3, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Train ``tempnet`` in place on frozen ``logits`` (N, V) with :func:`dro_loss` by Adam on
    random minibatches (drawn from ``seed``'s data stream, through
    :func:`nbsupport.train.fit_in_place`); returns its log."""
    def sample(step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(target), (batch,), generator=generator).to(target.device)
        return logits[idx], target[idx]

    def loss_fn(net: TempNet, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        z, y = b
        return dro_loss(z, y, net(z), rho)

    return fit_in_place(tempnet, sample, seed=seed, steps=steps, loss=loss_fn, optimizer="adam", lr=lr,
                        progress=progress, desc="TempNet")


def tempered_entropy(logits: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    """Entropy (nats, float64) of ``softmax(z / τ)`` per row; ``tau`` is a scalar or one per row.

    With frozen logits the DRO loss's optimum in τ solves ``KL(softmax(z/τ) ‖ uniform) = ρ``,
    i.e. this entropy equals ``log V - ρ`` (module docstring), whatever the label.
    """
    t = torch.as_tensor(tau, dtype=torch.float64)
    t = t.reshape(-1, 1) if t.ndim else t
    logp = torch.log_softmax(logits.double() / t, dim=1)
    return -(logp.exp() * logp).sum(1)
