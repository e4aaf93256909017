"""Triton path of the S4D Vandermonde kernel (see :mod:`nbsupport.kernels.vandermonde`).

Complex numbers travel as real/imaginary pairs (four float32 (H, N) planes). Forward: one
program per (channel h, block of positions l) loops over the states n in blocks and sums
``2 E (Cr cos(phi) - Ci sin(phi))`` with ``E = exp(ar l)``, ``phi = ai l``. Backward: one
program per (channel h, block of states n) loops over l in blocks and accumulates

- dK/dCr = 2 E cos(phi),        dK/dCi = -2 E sin(phi),
- dK/dar = 2 l E (Cr cos - Ci sin),  dK/dai = -2 l E (Cr sin + Ci cos),

weighted by the incoming gradient. PyTorch's gradient of a real loss with respect to a complex
``z = a + ib`` is ``dL/da + i dL/db``, so those pairs are returned as complex tensors. N and L
are runtime arguments; every reduction runs in a fixed order, so results are deterministic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nbsupport.kernels.vandermonde import _check


@triton.jit
def _s4d_fwd(AR, AI, CR, CI, K, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    h = tl.program_id(0).to(tl.int64)
    ls = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
    lmask = ls < L
    lf = ls.to(tl.float32)
    acc = tl.zeros([BLOCK_L], tl.float32)
    for n0 in range(0, N, BLOCK_N):
        ns = n0 + tl.arange(0, BLOCK_N)
        nmask = ns < N
        ar = tl.load(AR + h * N + ns, mask=nmask, other=0.0)
        ai = tl.load(AI + h * N + ns, mask=nmask, other=0.0)
        cr = tl.load(CR + h * N + ns, mask=nmask, other=0.0)
        ci = tl.load(CI + h * N + ns, mask=nmask, other=0.0)
        keep = nmask[:, None] & lmask[None, :]
        mag = tl.exp(tl.where(keep, ar[:, None] * lf[None, :], 0.0))
        phase = ai[:, None] * lf[None, :]
        term = mag * (cr[:, None] * tl.cos(phase) - ci[:, None] * tl.sin(phase))
        acc += tl.sum(tl.where(keep, term, 0.0), axis=0)
    tl.store(K + h * L + ls, 2.0 * acc, mask=lmask)


@triton.jit
def _s4d_bwd(AR, AI, CR, CI, DK, GAR, GAI, GCR, GCI, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    h = tl.program_id(0).to(tl.int64)
    ns = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = ns < N
    ar = tl.load(AR + h * N + ns, mask=nmask, other=0.0)
    ai = tl.load(AI + h * N + ns, mask=nmask, other=0.0)
    cr = tl.load(CR + h * N + ns, mask=nmask, other=0.0)
    ci = tl.load(CI + h * N + ns, mask=nmask, other=0.0)
    g_cr = tl.zeros([BLOCK_N], tl.float32)
    g_ci = tl.zeros([BLOCK_N], tl.float32)
    g_ar = tl.zeros([BLOCK_N], tl.float32)
    g_ai = tl.zeros([BLOCK_N], tl.float32)
    for l0 in range(0, L, BLOCK_L):
        ls = l0 + tl.arange(0, BLOCK_L)
        lmask = ls < L
        lf = ls.to(tl.float32)
        dk = tl.load(DK + h * L + ls, mask=lmask, other=0.0)
        keep = nmask[:, None] & lmask[None, :]
        mag = tl.exp(tl.where(keep, ar[:, None] * lf[None, :], 0.0))
        phase = ai[:, None] * lf[None, :]
        ec = tl.where(keep, mag * tl.cos(phase) * dk[None, :], 0.0)
        es = tl.where(keep, mag * tl.sin(phase) * dk[None, :], 0.0)
        g_cr += tl.sum(ec, axis=1)
        g_ci -= tl.sum(es, axis=1)
        g_ar += tl.sum(lf[None, :] * (cr[:, None] * ec - ci[:, None] * es), axis=1)
        g_ai -= tl.sum(lf[None, :] * (cr[:, None] * es + ci[:, None] * ec), axis=1)
    tl.store(GCR + h * N + ns, 2.0 * g_cr, mask=nmask)
    tl.store(GCI + h * N + ns, 2.0 * g_ci, mask=nmask)
    tl.store(GAR + h * N + ns, 2.0 * g_ar, mask=nmask)
    tl.store(GAI + h * N + ns, 2.0 * g_ai, mask=nmask)


def _planes(z: torch.Tensor) -> list[torch.Tensor]:
    return [z.real.float().contiguous(), z.imag.float().contiguous()]


def _blocks(N: int, L: int) -> tuple[int, int]:
    return min(32, triton.next_power_of_2(N)), min(128, triton.next_power_of_2(L))


class _TritonS4DKernel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dtA, C, L):
        H, N = dtA.shape
        ar, ai = _planes(dtA)
        cr, ci = _planes(C)
        K = torch.empty(H, L, dtype=torch.float32, device=dtA.device)
        bn, bl = _blocks(N, L)
        _s4d_fwd[(H, triton.cdiv(L, bl))](ar, ai, cr, ci, K, N, L, BLOCK_N=bn, BLOCK_L=bl)
        ctx.save_for_backward(ar, ai, cr, ci)
        ctx.dtypes = (dtA.dtype, C.dtype)
        return K.to(dtA.real.dtype)

    @staticmethod
    def backward(ctx, dK):
        ar, ai, cr, ci = ctx.saved_tensors
        H, N = ar.shape
        L = dK.shape[1]
        grads = [torch.empty_like(ar) for _ in range(4)]
        bn, bl = _blocks(N, L)
        _s4d_bwd[(H, triton.cdiv(N, bn))](ar, ai, cr, ci, dK.float().contiguous(), *grads, N, L,
                                          BLOCK_N=bn, BLOCK_L=bl)
        g_ar, g_ai, g_cr, g_ci = grads
        return (torch.complex(g_ar, g_ai).to(ctx.dtypes[0]), torch.complex(g_cr, g_ci).to(ctx.dtypes[1]), None)


def triton_s4d_kernel(dtA: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """Triton path: real (H, L) kernel, float32 accumulation, forward and backward kernels."""
    _check(dtA, C, L)
    return _TritonS4DKernel.apply(dtA, C, int(L))
