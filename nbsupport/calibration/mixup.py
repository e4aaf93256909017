"""Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization").

A batch becomes ``λ·x + (1-λ)·x[perm]`` with soft targets ``λ·onehot(y) + (1-λ)·onehot(y[perm])``,
``λ ~ Beta(α, α)`` drawn once per batch. Chidambaram & Ge (2023) show that Mixup training stays
calibrated where ERM + temperature scaling cannot (overlapping class supports).
Train with ``torch.nn.functional.cross_entropy(logits, soft_targets)`` (probability targets).
"""

from __future__ import annotations

import pandas as pd
import torch
from scipy.special import betaincinv

from nbsupport.train import fit_in_place, tensor_sampler


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Return ``(mixed inputs, soft targets (n, num_classes), λ)``; ``alpha = 0`` leaves the batch as is.

    ``λ`` is drawn by inverse-CDF sampling of Beta(α, α) from one uniform of ``generator``, then
    the partner permutation from the same generator (the batch sampler's generator in training).
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if x.shape[0] != y.shape[0] or y.ndim != 1:
        raise ValueError(f"x and y must share the batch dimension; got {tuple(x.shape)} and {tuple(y.shape)}")
    onehot = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)
    if alpha == 0:
        return x, onehot, 1.0
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    lam = float(betaincinv(alpha, alpha, u))
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * onehot + (1 - lam) * onehot[perm], lam


def train_classifier(
    model: torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    mixup_alpha: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    desc: str = "train",
    eval_fn=None,
    eval_every: int | None = None,
) -> pd.DataFrame:
    """Train ``model`` in place by Adam on cross-entropy (ERM), or on Mixup batches when
    ``mixup_alpha > 0``, through :func:`nbsupport.train.fit_in_place`: minibatches of ``batch``
    rows without replacement (fresh permutation each epoch) and Mixup's ``λ`` and partners all
    drawn from ``seed``'s data stream; ``eval_fn`` runs every ``eval_every`` steps and at the end;
    ``weight_decay`` is Adam's L2 penalty. Returns the log."""
    num_classes = int(y.max()) + 1
    num_classes = max(num_classes, getattr(getattr(model, "head", None), "out_features", num_classes))
    rows = tensor_sampler((X, y), batch)()  # this call's one run: a fresh epoch state

    def data(step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = rows(step, generator)
        if mixup_alpha > 0:
            xb, target, _ = mixup(xb, yb, num_classes, mixup_alpha, generator)
            return xb, target
        return xb, yb

    return fit_in_place(model, data, seed=seed, steps=steps, optimizer="adam", lr=lr, weight_decay=weight_decay,
                        progress=progress, desc=desc, eval_fn=eval_fn, eval_every=eval_every)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, X: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """Logits of ``model`` on ``X`` in eval mode, in batches."""
    was = model.training
    model.eval()
    out = torch.cat([model(X[s : s + batch]) for s in range(0, X.shape[0], batch)])
    model.train(was)
    return out
