"""Cross-entropy with z-loss: ``CE + z·log²Z`` per token (Wortsman et al. 2023, "Small-scale
proxies for large-scale Transformer training instabilities", §3.2; PaLM's auxiliary loss).

For logits ``x`` (N, V) and targets ``y``: ``log Z = logsumexp(x)``,
``loss_i = log Z_i - x_{i,y_i} + z·(log Z_i)²``, averaged over targets that are not
``ignore_index``. Paths: ``reference`` (plain autograd, clear, float64-testable),
``fast`` (CPU fast path: rows in chunks with the gradient computed in the forward pass,
so no softmax is kept for backward), ``triton`` (:mod:`nbsupport.kernels.cross_entropy_triton`).

The gradient, used by the fast paths: ``∂loss_i/∂x_ij = p_ij·(1 + 2z·log Z_i) - [j = y_i]``.
"""

from __future__ import annotations

import torch

from nbsupport.kernels import register, resolve

register("cross_entropy", "reference", "nbsupport.kernels.cross_entropy:reference")
register("cross_entropy", "fast", "nbsupport.kernels.cross_entropy:chunked")
register("cross_entropy", "triton", "nbsupport.kernels.cross_entropy_triton:triton_cross_entropy")


def _check(logits: torch.Tensor, target: torch.Tensor, z_loss: float) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, V); got shape {tuple(logits.shape)} (flatten batch and time first)")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must be (N,) = {tuple(logits.shape[:1])}; got {tuple(target.shape)}")
    if z_loss < 0:
        raise ValueError(f"z_loss must be >= 0, got {z_loss}")


def reference(
    logits: torch.Tensor, target: torch.Tensor, z_loss: float = 0.0, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch: returns (mean loss over kept tokens, log Z per token)."""
    _check(logits, target, z_loss)
    x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    lse = torch.logsumexp(x, dim=-1)
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros_like(target))
    picked = x.gather(1, safe[:, None]).squeeze(1)
    per_token = (lse - picked + z_loss * lse**2) * keep
    return per_token.sum() / keep.sum().clamp(min=1), lse.detach()


class _ChunkedCE(torch.autograd.Function):
    """Rows in chunks; the forward writes ``∂mean/∂x`` straight into one (N, V) buffer as
    ``exp(x - log Z + log(1 + 2z·log Z)) / count`` minus the one-hot, so backward is free
    when the upstream gradient is 1 (the usual ``loss.backward()``)."""

    @staticmethod
    def forward(ctx, logits, target, z_loss, ignore_index, chunk):
        n = logits.shape[0]
        keep = target != ignore_index
        count = int(keep.sum().clamp(min=1))
        acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
        grad = torch.empty_like(logits, dtype=acc) if ctx.needs_input_grad[0] else None
        lse_all = torch.empty(n, dtype=acc, device=logits.device)
        total = torch.zeros((), dtype=acc, device=logits.device)
        for s in range(0, n, chunk):
            x = logits[s : s + chunk].to(acc)
            t, k = target[s : s + chunk], keep[s : s + chunk]
            safe = torch.where(k, t, torch.zeros_like(t))
            lse = torch.logsumexp(x, dim=-1)
            lse_all[s : s + chunk] = lse
            picked = x.gather(1, safe[:, None]).squeeze(1)
            total += ((lse - picked + z_loss * lse**2) * k).sum()
            if grad is not None:
                factor = (1 + 2 * z_loss * lse) / count
                g = grad[s : s + chunk]
                if bool((factor > 0).all()):
                    torch.sub(x, (lse - factor.log())[:, None], out=g).exp_()
                else:  # log Z below -1/(2z): the factor turns negative
                    torch.sub(x, lse[:, None], out=g).exp_().mul_(factor[:, None])
                g.scatter_add_(1, safe[:, None], torch.full_like(lse, -1.0 / count)[:, None])
                if not bool(k.all()):
                    g[~k] = 0
        ctx.dtype = logits.dtype
        if grad is not None:
            ctx.save_for_backward(grad)
        return total / count, lse_all

    @staticmethod
    def backward(ctx, grad_loss, _grad_lse):
        (grad,) = ctx.saved_tensors
        if not bool(grad_loss == 1):
            grad = grad * grad_loss
        return grad.to(ctx.dtype) if grad.dtype != ctx.dtype else grad, None, None, None, None


def chunked(
    logits: torch.Tensor,
    target: torch.Tensor,
    z_loss: float = 0.0,
    ignore_index: int = -100,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU fast path: same values as :func:`reference`, one (N, V) gradient buffer, no softmax kept."""
    _check(logits, target, z_loss)
    return _ChunkedCE.apply(logits, target, float(z_loss), int(ignore_index), int(chunk))


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    z_loss: float = 0.0,
    ignore_index: int = -100,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy plus ``z_loss·log²Z`` and the per-token ``log Z``, through the resolver."""
    fn = resolve("cross_entropy", logits.device, impl)
    return fn(logits, target, z_loss=z_loss, ignore_index=ignore_index)
