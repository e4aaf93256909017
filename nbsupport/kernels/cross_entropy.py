"""Cross-entropy with z-loss: ``CE + z·log²Z`` per token (Wortsman et al. 2023, "Small-scale
proxies for large-scale Transformer training instabilities", §3.2; PaLM's auxiliary loss).

For logits ``x`` (N, V) and targets ``y``: ``log Z = logsumexp(x)``,
``loss_i = log Z_i - x_{i,y_i} + z·(log Z_i)²``, averaged over targets that are not
``ignore_index``. Paths: ``reference`` (plain autograd, clear, float64-testable),
``compile`` (CPU fast path: rows in chunks with the gradient computed in the forward pass,
so no softmax is kept for backward), ``triton`` (:mod:`nbsupport.kernels.cross_entropy_triton`).

The gradient, used by the fast paths: ``∂loss_i/∂x_ij = p_ij·(1 + 2z·log Z_i) - [j = y_i]``.
"""

from __future__ import annotations

import torch

from nbsupport.kernels import register, resolve

register("cross_entropy", "reference", "nbsupport.kernels.cross_entropy:reference")
register("cross_entropy", "compile", "nbsupport.kernels.cross_entropy:chunked")
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
    @staticmethod
    def forward(ctx, logits, target, z_loss, ignore_index, chunk):
        n = logits.shape[0]
        keep = target != ignore_index
        count = keep.sum().clamp(min=1)
        grad = torch.empty_like(logits) if ctx.needs_input_grad[0] else None
        lse_all = torch.empty(n, dtype=torch.float32 if logits.dtype != torch.float64 else logits.dtype,
                              device=logits.device)
        total = torch.zeros((), dtype=lse_all.dtype, device=logits.device)
        for s in range(0, n, chunk):
            x = logits[s : s + chunk].to(lse_all.dtype, copy=True)
            t = target[s : s + chunk]
            k = keep[s : s + chunk]
            safe = torch.where(k, t, torch.zeros_like(t))
            lse = torch.logsumexp(x, dim=-1)
            lse_all[s : s + chunk] = lse
            picked = x.gather(1, safe[:, None]).squeeze(1)
            total += ((lse - picked + z_loss * lse**2) * k).sum()
            if grad is not None:
                g = x.sub_(lse[:, None]).exp_()  # softmax, reusing the chunk's buffer
                g.mul_((1 + 2 * z_loss * lse)[:, None])
                g.scatter_add_(1, safe[:, None], -torch.ones_like(lse)[:, None])
                g.mul_(k[:, None])
                grad[s : s + chunk] = g
        if grad is not None:
            ctx.save_for_backward(grad, count)
        return total / count, lse_all

    @staticmethod
    def backward(ctx, grad_loss, _grad_lse):
        grad, count = ctx.saved_tensors
        return grad * (grad_loss / count), None, None, None, None


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
