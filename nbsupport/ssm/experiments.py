"""Training and evaluation helpers the SSM notebooks share: seeded fitting of sequence models,
accuracy / R^2, Fourier-mode input noise (Yu et al. 2023, §5), and masked denoising for
self-pretraining (Amos et al. 2023, "Never Train from Scratch", §3)."""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from nbsupport import schedules
from nbsupport.models.s4d import param_groups
from nbsupport.train import fit_in_place


def _fit_in_place(model: nn.Module, sampler, loss_fn, *, steps: int, lr: float, weight_decay: float,
                  ssm_lr: float, warmup: float, grad_clip: float, seed: int, progress: bool, desc: str) -> pd.DataFrame:
    """One seed through :func:`nbsupport.train.fit_in_place` (AdamW with the SSM parameter groups,
    linear warmup and cosine decay)."""
    return fit_in_place(model, sampler, seed=seed, steps=steps, loss=loss_fn, lr=lr, grad_clip=grad_clip,
                        optimizer=lambda m: torch.optim.AdamW(param_groups(m, lr, weight_decay, ssm_lr)),
                        schedule=schedules.cosine(int(warmup * steps), steps), progress=progress, desc=desc)


def _indices(n: int, batch: int):
    return lambda step, g: torch.randint(0, n, (min(batch, n),), generator=g)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, task: str = "classify",
        mask: torch.Tensor | None = None, batch: int = 32, lr: float = 3e-3, ssm_lr: float = 1e-3,
        weight_decay: float = 0.01, warmup: float = 0.1, grad_clip: float = 1.0, seed: int = 0,
        progress: bool = True, desc: str = "train") -> pd.DataFrame:
    """Train ``model`` in place with AdamW (SSM parameters in their own group, see ``param_groups``),
    linear warmup and cosine decay, on random minibatches drawn from ``seed`` (through
    :func:`nbsupport.train.fit`). ``task``: ``classify`` (cross-entropy; y (n,) or (n, L) with
    -100 ignored) or ``regress`` (MSE over ``mask`` positions). Returns the log."""
    if task not in ("classify", "regress"):
        raise ValueError(f"task must be 'classify' or 'regress', got {task!r}")
    device = next(model.parameters()).device

    def loss_fn(m: nn.Module, idx: torch.Tensor):
        xb, yb = x[idx].to(device), y[idx].to(device)
        out = m(xb)
        if task == "classify":
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1), ignore_index=-100)
        if mask is not None:
            out, yb = out[:, mask], yb[:, mask]
        return F.mse_loss(out, yb)

    return _fit_in_place(model, _indices(len(x), batch), loss_fn, steps=steps, lr=lr, weight_decay=weight_decay,
                         ssm_lr=ssm_lr, warmup=warmup, grad_clip=grad_clip, seed=seed, progress=progress, desc=desc)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)])
    model.train()
    return out


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``argmax`` predictions equal to y (positions with y = -100 are ignored)."""
    pred = predict(model, x).argmax(-1)
    keep = y != -100
    return float((pred[keep] == y[keep]).float().mean())


def r2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Coefficient of determination of the model's outputs over the ``mask`` positions."""
    from nbsupport.data.sequences import r2_score

    return r2_score(predict(model, x), y, mask)


def fourier_noise(x: torch.Tensor, freq: float, amplitude: float, seed: int = 0) -> torch.Tensor:
    """Add ``amplitude * sin(2 pi freq t / L + phase)`` to every channel, a random phase per sequence
    (the Fourier-mode perturbations of Yu et al. 2023)."""
    g = torch.Generator().manual_seed(seed)
    n, L = x.shape[:2]
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    t = torch.arange(L, dtype=torch.float32)
    return x + amplitude * torch.sin(2 * math.pi * freq * t / L + phase)[..., None]


def mask_spans(x: torch.Tensor, ratio: float = 0.5, span: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero out random spans covering about ``ratio`` of each sequence; append a mask-flag channel.

    Returns (masked input (n, L, d + 1), mask (n, L) True where hidden)."""
    g = torch.Generator().manual_seed(seed)
    n, L = x.shape[:2]
    n_blocks = math.ceil(L / span)
    hidden = (torch.rand(n, n_blocks, generator=g) < ratio).repeat_interleave(span, dim=1)[:, :L]
    masked = x.masked_fill(hidden[..., None], 0.0)
    return torch.cat([masked, hidden[..., None].float()], dim=-1), hidden


def with_mask_channel(x: torch.Tensor) -> torch.Tensor:
    """Append an all-zero mask-flag channel (inputs for models pretrained with :func:`mask_spans`)."""
    return torch.cat([x, torch.zeros_like(x[..., :1])], dim=-1)


def pretrain_denoising(model: nn.Module, x: torch.Tensor, *, steps: int, ratio: float = 0.5, span: int = 8,
                       batch: int = 32, lr: float = 3e-3, ssm_lr: float = 1e-3, seed: int = 0,
                       progress: bool = True, desc: str = "pretrain") -> pd.DataFrame:
    """Self-pretraining: reconstruct the hidden spans of the task's own inputs (MSE on hidden positions).

    ``model`` maps (n, L, d + 1) to (n, L, d) (no pooling) and is trained in place through
    :func:`nbsupport.train.fit`. A fresh mask is drawn for every batch from the batch's generator."""
    device = next(model.parameters()).device

    def sampler(step: int, g: torch.Generator):
        idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=g)
        return idx, int(torch.randint(0, 2**31 - 1, (1,), generator=g))

    def loss_fn(m: nn.Module, b):
        idx, mask_seed = b
        clean = x[idx]
        masked, hidden = mask_spans(clean, ratio, span, seed=mask_seed)
        out = m(masked.to(device))
        return F.mse_loss(out[hidden.to(device)], clean.to(device)[hidden.to(device)])

    return _fit_in_place(model, sampler, loss_fn, steps=steps, lr=lr, weight_decay=0.01, ssm_lr=ssm_lr,
                         warmup=0.1, grad_clip=1.0, seed=seed, progress=progress, desc=desc)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
