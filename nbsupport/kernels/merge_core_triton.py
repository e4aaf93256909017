"""Triton path of the TIES/DARE/Breadcrumbs merge core (see :mod:`nbsupport.kernels.merge_core`).

One program per block of ``BLOCK`` columns walks the n models twice: the first pass builds
the elected sign (the sum of the kept, weighted entries, or the count of their signs), the
second sums the entries that agree with it and their weights. Trim bounds, drop
probabilities, scales, weights and seeds are per-model runtime vectors; the DARE drop is
drawn in the kernel from the same counter-based hash as the torch paths, so all paths keep
the same entries. Models are summed in index order, so results are deterministic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nbsupport.kernels.merge_core import CONSENSUS, _params, _rows


@triton.jit
def _lowbias32(x):
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * tl.full(x.shape, 0x846CA68B, tl.uint32)
    return x ^ (x >> 16)


@triton.jit
def _t_entry(D, W, LO, HI, P, S, SEED, i, cols, mask, stride, offset):
    d = tl.load(D + i * stride + cols, mask=mask, other=0.0).to(tl.float32)
    a = tl.abs(d)
    keep = (a >= tl.load(LO + i)) & (a <= tl.load(HI + i))
    p = tl.load(P + i)
    x = _lowbias32((cols + offset).to(tl.uint32))
    x = _lowbias32(x ^ tl.load(SEED + i).to(tl.uint32))
    u = (x >> 8).to(tl.float32) * (1.0 / 16777216.0)
    keep = keep & (u >= p)  # u ≥ 0, so p = 0 keeps everything
    return tl.where(keep, d, 0.0) * tl.load(S + i) * tl.load(W + i)


@triton.jit
def _merge_core_kernel(
    D, OUT, W, LO, HI, P, S, SEED, n, m, stride, offset, wsum,
    CONSENSUS_MODE: tl.constexpr, NORMALIZE: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = pid * BLOCK + tl.arange(0, BLOCK)
    mask = cols < m
    total = tl.zeros([BLOCK], tl.float32)
    for i in range(0, n):
        t = _t_entry(D, W, LO, HI, P, S, SEED, i, cols, mask, stride, offset)
        if CONSENSUS_MODE == 2:
            total += tl.where(t > 0, 1.0, tl.where(t < 0, -1.0, 0.0))
        else:
            total += t
    if CONSENSUS_MODE == 0:
        mixed = total
        div = tl.zeros([BLOCK], tl.float32) + wsum
        div = tl.where(tl.abs(div) < 1e-8, 1.0, div)
    else:
        elected = tl.where(total >= 0, 1.0, -1.0)
        mixed = tl.zeros([BLOCK], tl.float32)
        div = tl.zeros([BLOCK], tl.float32)
        for i in range(0, n):
            t = _t_entry(D, W, LO, HI, P, S, SEED, i, cols, mask, stride, offset)
            sign = tl.where(t > 0, 1.0, tl.where(t < 0, -1.0, 0.0))
            agree = sign == elected
            mixed += tl.where(agree, t, 0.0)
            div += tl.where(agree, tl.load(W + i), 0.0)
        div = tl.where(div == 0, 1.0, div)
    if NORMALIZE:
        mixed = mixed / div
    tl.store(OUT + cols, mixed.to(OUT.dtype.element_ty), mask=mask)


def triton_merge_core(
    deltas, weights=None, lo=None, hi=None, drop=None, scale=None, seeds=None,
    consensus: str | None = "sum", normalize: bool = True, offset: int = 0, block: int = 1024,
) -> torch.Tensor:
    """Same values as :func:`nbsupport.kernels.merge_core.reference` (float32 accumulation)."""
    rows = _rows(deltas)
    n = len(rows)
    w, lo, hi, p, s, sd = _params(n, weights, lo, hi, drop, scale, seeds, consensus)
    d = deltas.reshape(n, -1).contiguous() if isinstance(deltas, torch.Tensor) else torch.stack(rows)
    dev = d.device
    f32 = dict(dtype=torch.float32, device=dev)
    m = d.shape[1]
    out = torch.empty(m, dtype=d.dtype, device=dev)
    if m == 0:
        return out
    grid = (triton.cdiv(m, block),)
    _merge_core_kernel[grid](
        d, out, torch.tensor(w, **f32), torch.tensor(lo, **f32), torch.tensor(hi, **f32),
        torch.tensor(p, **f32), torch.tensor(s, **f32), torch.tensor(sd, dtype=torch.int64, device=dev),
        n, m, d.stride(0), int(offset), float(sum(w)),
        CONSENSUS_MODE=CONSENSUS.index(consensus), NORMALIZE=bool(normalize), BLOCK=block,
    )
    return out
