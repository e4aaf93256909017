"""Diagonal Fisher information of a classifier (Matena & Raffel 2022, "Merging Models with
Fisher-Weighted Averaging", Eq. 4)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.func import functional_call, grad, vmap


def fisher_diagonal(
    model: torch.nn.Module, data: Iterable, expected: bool = True, max_examples: int | None = None
) -> dict[str, torch.Tensor]:
    """F = mean over inputs x of Σ_y p(y|x)·(∇_θ log p(y|x))², per trainable parameter.

    ``model(x)`` gives logits; ``data`` yields batches ``x`` or ``(x, y, ...)`` (``y`` is
    used only when ``expected=False``: the empirical Fisher, the squared gradient at the
    true label). Per-example gradients come from ``torch.func.vmap``; the expectation over
    y takes one vmapped gradient per class, weighted by p(y|x). Only parameters with
    ``requires_grad`` get a Fisher (frozen layers are skipped). The model runs in eval mode.
    """
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    fisher = {k: torch.zeros_like(v) for k, v in params.items()}

    def logp(p, x, y):
        logits = functional_call(model, {**p, **frozen, **buffers}, (x[None],))
        return torch.log_softmax(logits, -1)[0].gather(0, y[None])[0]

    per_example = vmap(grad(logp), in_dims=(None, 0, 0))
    count = 0
    was_training = model.training
    model.eval()
    for batch in data:
        x, y = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
        if max_examples is not None:
            x = x[: max_examples - count]
            y = None if y is None else y[: max_examples - count]
        if len(x) == 0:
            break
        if expected:
            with torch.no_grad():
                probs = torch.softmax(model(x), -1)
            for c in range(probs.shape[1]):
                g = per_example(params, x, torch.full((len(x),), c, dtype=torch.long))
                for k in fisher:
                    w = probs[:, c].reshape(-1, *([1] * (g[k].dim() - 1)))
                    fisher[k] += (w * g[k] ** 2).sum(0)
        else:
            if y is None:
                raise ValueError("the empirical Fisher (expected=False) needs (x, y) batches")
            g = per_example(params, x, y)
            for k in fisher:
                fisher[k] += (g[k] ** 2).sum(0)
        count += len(x)
        if max_examples is not None and count >= max_examples:
            break
    model.train(was_training)
    return {k: v / max(count, 1) for k, v in fisher.items()}
