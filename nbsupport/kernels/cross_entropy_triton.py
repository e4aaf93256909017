"""Triton path of cross-entropy with z-loss (see :mod:`nbsupport.kernels.cross_entropy`).

One program per row walks the vocabulary in blocks of ``BLOCK`` (any V): a first pass keeps
an online max and sum for ``log Z``; a second pass writes the gradient
``p·(1 + 2z·log Z) - onehot`` into a buffer, so backward is one scale. ``z_loss`` and
``V`` are runtime arguments (only ``BLOCK`` is ``constexpr``). Each row is reduced in a
fixed order and the mean is a plain ``torch.sum``, so results are deterministic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nbsupport.kernels.cross_entropy import _check


@triton.jit
def _ce_zloss_kernel(
    X, T, LOSS, LSE, G, stride_x, stride_g, V, z_loss, ignore_index, WRITE_GRAD: tl.constexpr, BLOCK: tl.constexpr
):
    row = tl.program_id(0).to(tl.int64)
    x_ptr = X + row * stride_x
    target = tl.load(T + row)
    offs = tl.arange(0, BLOCK)
    m = tl.full([BLOCK], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK], tl.float32)
    for start in range(0, V, BLOCK):
        cols = start + offs
        x = tl.load(x_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, x)
        # guard lanes that have seen only -inf so far
        scale = tl.where(m_new == float("-inf"), 0.0, tl.exp(m - m_new))
        s = s * scale + tl.where(x == float("-inf"), 0.0, tl.exp(x - m_new))
        m = m_new
    m_row = tl.max(m, axis=0)
    s_row = tl.sum(s * tl.where(m == float("-inf"), 0.0, tl.exp(m - m_row)), axis=0)
    lse = m_row + tl.log(s_row)
    keep = target != ignore_index
    safe_t = tl.where(keep, target, 0)
    picked = tl.load(x_ptr + safe_t).to(tl.float32)
    loss = tl.where(keep, lse - picked + z_loss * lse * lse, 0.0)
    tl.store(LOSS + row, loss)
    tl.store(LSE + row, lse)
    if WRITE_GRAD:
        g_ptr = G + row * stride_g
        factor = 1.0 + 2.0 * z_loss * lse
        for start in range(0, V, BLOCK):
            cols = start + offs
            x = tl.load(x_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
            g = tl.exp(x - lse) * factor - tl.where(cols == safe_t, 1.0, 0.0)
            g = tl.where(keep, g, 0.0)
            tl.store(g_ptr + cols, g.to(G.dtype.element_ty), mask=cols < V)


def _block(v: int) -> int:
    return min(4096, triton.next_power_of_2(v))


class _TritonCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, z_loss, ignore_index):
        logits = logits.contiguous()
        n, v = logits.shape
        loss = torch.empty(n, dtype=torch.float32, device=logits.device)
        lse = torch.empty(n, dtype=torch.float32, device=logits.device)
        write_grad = ctx.needs_input_grad[0]
        grad = torch.empty_like(logits) if write_grad else loss  # dummy pointer when unused
        _ce_zloss_kernel[(n,)](
            logits, target.contiguous(), loss, lse, grad,
            logits.stride(0), grad.stride(0) if write_grad else 0,
            v, float(z_loss), int(ignore_index),
            WRITE_GRAD=write_grad, BLOCK=_block(v),
        )
        count = (target != ignore_index).sum().clamp(min=1)
        if write_grad:
            ctx.save_for_backward(grad, count)
        return loss.sum() / count, lse

    @staticmethod
    def backward(ctx, grad_loss, _grad_lse):
        grad, count = ctx.saved_tensors
        return grad * (grad_loss / count).to(grad.dtype), None, None, None


def triton_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, z_loss: float = 0.0, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton path: (mean loss, log Z per token), forward and backward in one kernel."""
    _check(logits, target, z_loss)
    return _TritonCE.apply(logits, target, float(z_loss), int(ignore_index))
