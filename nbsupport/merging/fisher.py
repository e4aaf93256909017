"""Diagonal Fisher information of a classifier (Matena & Raffel 2022, "Merging Models with
Fisher-Weighted Averaging", Eq. 4)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.func import functional_call, grad, vmap


def fisher_diagonal(
    model: torch.nn.Module,
    data: Iterable,
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None,
    expected: bool = True,
    max_examples: int | None = None,
) -> dict[str, torch.Tensor]:
    """F = mean over inputs x of Σ_y p(y|x)·(∇_θ log p(y|x))², per trainable parameter.

    ``data`` yields batches ``x`` or ``(x, y, ...)`` (only ``x`` is used when ``expected``);
    ``forward(model, x)`` gives logits (default ``model(x)``). ``expected=False`` gives the
    empirical Fisher, the squared gradient at the true label ``y``. Per-example gradients
    come from ``torch.func.vmap``; the expectation over y takes one vmapped gradient per
    class. Only parameters with ``requires_grad`` get a Fisher (frozen layers are skipped).
    """
    forward = forward or (lambda m, x: m(x))
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    fisher = {k: torch.zeros_like(v) for k, v in params.items()}

    def logp(p, x, y):
        logits = forward_call(p, x[None])
        return torch.log_softmax(logits, -1)[0, y]

    def forward_call(p, x):
        return functional_call(model, {**p, **buffers}, (x,)) if forward is None else _fwd(p, x)

    def _fwd(p, x):
        with _Swap(model, p):
            return forward(model, x)

    per_example = vmap(grad(lambda p, x, y: logp(p, x, y)), in_dims=(None, 0, 0))
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
        with torch.no_grad():
            probs = torch.softmax(forward(model, x), -1)
        if expected:
            for c in range(probs.shape[1]):
                g = per_example(params, x, torch.full((len(x),), c, dtype=torch.long))
                for k in fisher:
                    w = probs[:, c].reshape(-1, *([1] * (g[k].dim() - 1)))
                    fisher[k] += (w * g[k] ** 2).sum(0)
        else:
            g = per_example(params, x, y)
            for k in fisher:
                fisher[k] += (g[k] ** 2).sum(0)
        count += len(x)
        if max_examples is not None and count >= max_examples:
            break
    model.train(was_training)
    return {k: v / max(count, 1) for k, v in fisher.items()}


class _Swap:
    """Temporarily call ``model`` with the parameters ``p`` (for a custom ``forward``)."""

    def __init__(self, model: torch.nn.Module, p: dict[str, torch.Tensor]):
        self.model, self.p = model, p

    def __enter__(self):
        from torch.nn.utils import stateless

        self.ctx = stateless._reparametrize_module(self.model, self.p)
        return self.ctx.__enter__()

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)
