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


def minibatches(X: torch.Tensor, y: torch.Tensor, batch: int, generator: torch.Generator):
    """Endless shuffled epochs of ``(x, y)`` minibatches."""
    n = X.shape[0]
    while True:
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n - batch + 1 if n >= batch else 1, batch):
            idx = perm[s : s + batch]
            yield X[idx], y[idx]


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
):
    """Adam on cross-entropy (ERM), or on Mixup batches when ``mixup_alpha > 0``, on the shared
    loop (:func:`nbsupport.train.train`, which runs ``eval_fn`` every ``eval_every`` steps and at
    the end); ``weight_decay`` is Adam's L2 penalty. Returns the log."""
    from nbsupport.train import train

    num_classes = int(y.max()) + 1
    num_classes = max(num_classes, getattr(getattr(model, "head", None), "out_features", num_classes))
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)

    def loss_fn(m, b):
        xb, yb = b
        if mixup_alpha > 0:
            xb, target, _ = mixup(xb, yb, num_classes, mixup_alpha, rng)
            return torch.nn.functional.cross_entropy(m(xb), target)
        return torch.nn.functional.cross_entropy(m(xb), yb)

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return train(model, minibatches(X, y, batch, g), loss_fn, opt, steps, progress=progress, desc=desc,
                 eval_fn=eval_fn, eval_every=eval_every)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, X: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """Logits of ``model`` on ``X`` in eval mode, in batches."""
    was = model.training
    model.eval()
    out = torch.cat([model(X[s : s + batch]) for s in range(0, X.shape[0], batch)])
    model.train(was)
    return out
