"""Certified training with interval bound propagation (IBP) and an ε "warmup" ramp.

Follows Gowal et al. 2018 (IBP training, last-layer elision) and Shi et al. 2021, "Fast
Certified Robust Training with Short Warmup": the warmup ramps the perturbation radius ε
(not the LR); with the IBP initialization (weights ~ N(0, σ²), σ = √(2π)/fan_in) and batch
norm after every hidden layer, a short ramp is enough. Shi et al. also add two regularizers
during the ramp (bound tightness and ReLU balance); they are not implemented here.

For inputs ``x`` in [0, 1] and an L∞ ball of radius ε, intervals ``[l, u]`` are pushed
through the network: a linear map sends centre ``c`` and radius ``r`` to ``Wc + b`` and
``|W|r``, batch norm is a per-feature affine map (with the batch statistics of the clean
pass in training mode), ReLU is monotone. The last layer is folded into the margins
``z_y - z_j``: ``(W_y - W_j)·h + b_y - b_j`` over ``h ∈ [l, u]``, whose lower bound ``m_j``
certifies the prediction when ``min_j m_j > 0``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nbsupport.models.ibp_mlp import IBPNet

__all__ = ["certified_loss", "ibp_init_", "interval_widths", "margin_lower_bounds"]


def ibp_init_(model: nn.Module) -> nn.Module:
    """Shi et al.'s IBP initialization: linear weights ~ N(0, (√(2π)/fan_in)²), zero biases,
    which keeps the interval widths from growing layer by layer at initialization."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=math.sqrt(2 * math.pi) / m.in_features)
            nn.init.zeros_(m.bias)
    return model


def _intervals(model: IBPNet, x: torch.Tensor, eps: float, lo: float, hi: float,
               widths: list[float] | None = None):
    """Clean hidden features and their interval bounds before the head; with ``widths``,
    append the mean bound width ``u - l`` after each ReLU (one value per hidden layer)."""
    h, l, u = x, (x - eps).clamp(lo, hi), (x + eps).clamp(lo, hi)
    for m in model.body:
        if isinstance(m, nn.Linear):
            c, r = (u + l) / 2, (u - l) / 2
            c, r = m(c), r @ m.weight.abs().t()
            h, l, u = m(h), c - r, c + r
        elif isinstance(m, nn.BatchNorm1d):
            if m.training:
                mean, var = h.mean(0), h.var(0, unbiased=False)
                out = m(h)  # also updates the running statistics
            else:
                mean, var = m.running_mean, m.running_var
                out = m(h)
            scale = m.weight / torch.sqrt(var + m.eps)
            c, r = (u + l) / 2, (u - l) / 2
            c, r = (c - mean) * scale + m.bias, r * scale.abs()
            h, l, u = out, c - r, c + r
        elif isinstance(m, nn.ReLU):
            h, l, u = F.relu(h), F.relu(l), F.relu(u)
            if widths is not None:
                widths.append(float((u - l).mean()))
        else:  # pragma: no cover - IBPNet only holds the three kinds
            raise TypeError(f"IBP: unsupported layer {type(m).__name__}")
    return h, l, u


@torch.no_grad()
def interval_widths(model: IBPNet, x: torch.Tensor, eps: float, lo: float = 0.0,
                    hi: float = 1.0) -> list[float]:
    """Mean interval width ``u - l`` of each hidden layer's output (after its ReLU) over the
    ε-ball around ``x``: the quantity whose growth with depth Shi et al. (2021, §3.1) bound by
    the IBP initialization. Batch norm uses the batch statistics in training mode."""
    widths: list[float] = []
    _intervals(model, x, eps, lo, hi, widths)
    return widths


def margin_lower_bounds(model: IBPNet, x: torch.Tensor, y: torch.Tensor, eps: float,
                        lo: float = 0.0, hi: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean logits (N, C) and lower bounds (N, C) of ``z_y - z_j`` over the ε-ball (0 at j = y)."""
    h, l, u = _intervals(model, x, eps, lo, hi)
    w, b = model.head.weight, model.head.bias
    dw = w[y][:, None, :] - w[None, :, :]  # (N, C, H): W_y - W_j
    db = b[y][:, None] - b[None, :]
    c, r = (u + l) / 2, (u - l) / 2
    lower = torch.einsum("nch,nh->nc", dw, c) - torch.einsum("nch,nh->nc", dw.abs(), r) + db
    return model.head(h), lower


def certified_loss(model: IBPNet, x: torch.Tensor, y: torch.Tensor, eps: float,
                   lo: float = 0.0, hi: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """IBP training loss: cross-entropy of the worst-case logits ``-m_j`` (Gowal et al. 2018).

    At ε = 0 it equals the clean cross-entropy. Metrics: clean and verified accuracy of the batch.
    """
    logits, lower = margin_lower_bounds(model, x, y, eps, lo, hi)
    loss = F.cross_entropy(-lower, y)
    not_y = F.one_hot(y, lower.shape[1]).bool()
    verified = lower.masked_fill(not_y, math.inf).amin(1) > 0
    return loss, {"clean_acc": float((logits.argmax(1) == y).float().mean()),
                  "verified_acc": float(verified.float().mean()), "eps": float(eps)}
