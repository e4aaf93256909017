"""The elementwise core of TIES, DARE and Model Breadcrumbs over flattened task vectors.

For task vectors ``d_i`` (n rows of m entries), per-model weights ``w_i``, magnitude bounds
``lo_i ≤ hi_i``, drop probabilities ``p_i``, rescale factors ``s_i`` and seeds:

    keep_ij = lo_i ≤ |d_ij| ≤ hi_i  and  u(seed_i, j) ≥ p_i          (trim / DARE drop)
    t_ij    = d_ij · keep_ij · s_i · w_i
    γ_j     = +1 if Σ_i t_ij ≥ 0 else -1     (consensus "sum", TIES Eq. 3; mergekit)
              +1 if Σ_i sign(t_ij) ≥ 0 else -1                        (consensus "count")
    a_ij    = [sign(t_ij) = γ_j]   (all ones when consensus is None)
    out_j   = Σ_i a_ij·t_ij / D_j  with D_j = Σ_i a_ij·w_i (1 where 0) when ``normalize``,
              else Σ_i a_ij·t_ij

which is mergekit's ``GeneralizedTaskArithmeticMerge`` after sparsification (TIES: Yadav et
al. 2023, "Resolving Interference When Merging Models"; DARE: Yu et al. 2024, "Language
Models are Super Mario"; Breadcrumbs: Davari & Belilovsky 2023). The bounds, the per-model
seeds and the L1 rescale factors are merging logic and come from
:mod:`nbsupport.merging.selection`; this module holds only the fused elementwise op, the hash
and the mask they share.

``u(seed, j)`` is a counter-based hash (two rounds of Wellons' lowbias32 on 32-bit words),
the same bits in every path, so a DARE mask is reproducible from its seed, independent of
chunking and device. Paths: ``reference`` (plain torch on the stacked rows),
``fast`` (CPU fast path: column chunks, in-place ops, no (n, m) temporaries),
``triton`` (:mod:`nbsupport.kernels.merge_core_triton`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nbsupport.kernels import register, resolve

register("merge_core", "reference", "nbsupport.kernels.merge_core:reference")
register("merge_core", "fast", "nbsupport.kernels.merge_core:chunked")
register("merge_core", "triton", "nbsupport.kernels.merge_core_triton:triton_merge_core")

MASK32 = 0xFFFFFFFF
CONSENSUS = (None, "sum", "count")


# ---------------------------------------------------------------- counter-based random numbers
def _signed32(c: int) -> int:
    """The int32 with the same bits as the 32-bit word ``c``."""
    c &= MASK32
    return c - (1 << 32) if c >= (1 << 31) else c


def _lowbias32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32 on int32 tensors holding 32-bit words (wrapping multiply, logical shifts)."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _signed32(0x7FEB352D)
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _signed32(0x846CA68B)
    return x ^ ((x >> 16) & 0xFFFF)


def lowbias32_int(x: int) -> int:
    """The same hash on a Python int (the specification the tensor versions are tested against)."""
    x &= MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def _words(index: torch.Tensor) -> torch.Tensor:
    """int32 tensor with the low 32 bits of ``index``."""
    if index.dtype == torch.int32:
        return index
    index = index.to(torch.int64) & MASK32
    return (index - ((index >> 31) << 32)).to(torch.int32)


def uniform(seed: int, index: torch.Tensor) -> torch.Tensor:
    """Uniform numbers in [0, 1) (24 bits) for entries ``index`` of the stream ``seed``."""
    x = _lowbias32(_lowbias32(_words(index)) ^ _signed32(int(seed)))
    return ((x >> 8) & 0xFFFFFF).to(torch.float32) * (1.0 / (1 << 24))


def _positions(start: int, size: int, device) -> torch.Tensor:
    if start + size < (1 << 31):
        return torch.arange(start, start + size, dtype=torch.int32, device=device)
    return torch.arange(start, start + size, device=device)


# ---------------------------------------------------------------- the mask
def keep_mask(
    delta: torch.Tensor, lo: float, hi: float, drop: float, seed: int, offset: int = 0
) -> torch.Tensor:
    """Boolean mask of the kept entries of one flattened task vector (entries ``offset + j``)."""
    a = delta.abs()
    keep = (a >= lo) & (a <= hi)
    if drop > 0:
        keep &= uniform(seed, _positions(offset, delta.numel(), delta.device)) >= drop
    return keep


# ---------------------------------------------------------------- the op
def _params(n: int, weights, lo, hi, drop, scale, seeds, consensus):
    def vec(v, default):
        if v is None:
            return [float(default)] * n
        v = [float(x) for x in (v.tolist() if isinstance(v, torch.Tensor) else v)]
        if len(v) != n:
            raise ValueError(f"expected {n} per-model values, got {len(v)}")
        return v

    if consensus not in CONSENSUS:
        raise ValueError(f"consensus must be one of {CONSENSUS}, got {consensus!r}")
    w = vec(weights, 1.0)
    p = vec(drop, 0.0)
    if any(not 0 <= x < 1 for x in p):
        raise ValueError(f"drop probabilities must be in [0, 1), got {p}")
    sd = [int(x) for x in (seeds if seeds is not None else [lowbias32_int(0x9E3779B9 * (i + 1)) for i in range(n)])]
    if len(sd) != n:
        raise ValueError(f"expected {n} seeds, got {len(sd)}")
    return w, vec(lo, 0.0), vec(hi, float("inf")), p, vec(scale, 1.0), sd


def _rows(deltas) -> list[torch.Tensor]:
    rows = list(deltas.unbind(0)) if isinstance(deltas, torch.Tensor) else list(deltas)
    if not rows:
        raise ValueError("merge_core needs at least one task vector")
    m = rows[0].numel()
    if any(r.numel() != m for r in rows):
        raise ValueError(f"task vectors differ in size: {[r.numel() for r in rows]}")
    return [r.reshape(-1) for r in rows]


def reference(
    deltas: torch.Tensor | Sequence[torch.Tensor],
    weights=None,
    lo=None,
    hi=None,
    drop=None,
    scale=None,
    seeds=None,
    consensus: str | None = "sum",
    normalize: bool = True,
    offset: int = 0,
) -> torch.Tensor:
    """Plain PyTorch on the stacked (n, m) rows; the definition in the module docstring."""
    rows = _rows(deltas)
    n = len(rows)
    w, lo, hi, p, s, sd = _params(n, weights, lo, hi, drop, scale, seeds, consensus)
    t = torch.stack([
        rows[i] * keep_mask(rows[i], lo[i], hi[i], p[i], sd[i], offset) * s[i] * w[i] for i in range(n)
    ])
    wt = torch.tensor(w, dtype=t.dtype, device=t.device)[:, None]
    if consensus is None:
        mixed, div = t.sum(0), wt.sum(0).expand(t.shape[1]).clone()
        div[div.abs() < 1e-8] = 1
    else:
        sign = t.sign()
        total = t.sum(0) if consensus == "sum" else sign.sum(0)
        elected = torch.where(total >= 0, 1.0, -1.0).to(t.dtype)
        agree = sign == elected
        mixed = (t * agree).sum(0)
        div = (wt * agree).sum(0)
        div[div == 0] = 1
    return mixed / div if normalize else mixed


def chunked(
    deltas: torch.Tensor | Sequence[torch.Tensor],
    weights=None,
    lo=None,
    hi=None,
    drop=None,
    scale=None,
    seeds=None,
    consensus: str | None = "sum",
    normalize: bool = True,
    offset: int = 0,
    chunk: int = 1 << 22,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """CPU fast path: the same values as :func:`reference`, one column chunk at a time.

    Memory beyond the inputs: the output plus a few chunk-sized buffers; ``out`` may be
    one of the input rows (the merge is written in place, chunk by chunk).
    """
    rows = _rows(deltas)
    n = len(rows)
    w, lo, hi, p, s, sd = _params(n, weights, lo, hi, drop, scale, seeds, consensus)
    m = rows[0].numel()
    dtype = rows[0].dtype
    out = torch.empty(m, dtype=dtype, device=rows[0].device) if out is None else out.reshape(-1)
    c = min(chunk, max(m, 1))
    t = torch.empty((n, c), dtype=dtype)
    a = torch.empty(c, dtype=dtype)
    keep = torch.empty(c, dtype=torch.bool)
    wsum = sum(w)
    for start in range(0, m, c):
        size = min(c, m - start)
        tt, kk, aa = t[:, :size], keep[:size], a[:size]
        for i in range(n):
            x = rows[i][start : start + size]
            if lo[i] > 0 or hi[i] != float("inf"):
                torch.abs(x, out=aa)
                torch.ge(aa, lo[i], out=kk)
                if hi[i] != float("inf"):
                    kk &= aa <= hi[i]
                torch.mul(x, kk, out=tt[i])
            else:
                tt[i].copy_(x)
            if p[i] > 0:
                tt[i].mul_(uniform(sd[i], _positions(offset + start, size, tt.device)) >= p[i])
            if s[i] != 1:
                tt[i].mul_(s[i])
            if w[i] != 1:
                tt[i].mul_(w[i])
        o = out[start : start + size]
        if consensus is None:
            torch.sum(tt, 0, out=o)
            if normalize:
                o.div_(wsum if abs(wsum) >= 1e-8 else 1.0)
            continue
        sign = tt.sign()
        total = tt.sum(0) if consensus == "sum" else sign.sum(0)
        elected = torch.where(total >= 0, 1.0, -1.0).to(dtype)
        agree = sign == elected
        tt.mul_(agree)
        torch.sum(tt, 0, out=o)
        if normalize:
            div = torch.zeros(size, dtype=dtype)
            for i in range(n):
                div.add_(agree[i], alpha=w[i])
            div[div == 0] = 1
            o.div_(div)
    return out


def merge_core(
    deltas: torch.Tensor | Sequence[torch.Tensor],
    weights=None,
    lo=None,
    hi=None,
    drop=None,
    scale=None,
    seeds=None,
    consensus: str | None = "sum",
    normalize: bool = True,
    offset: int = 0,
    impl: str | None = None,
) -> torch.Tensor:
    """The merged (m,) task vector of n flattened task vectors, through the resolver."""
    first = deltas[0]
    fn = resolve("merge_core", first.device, impl)
    return fn(deltas, weights, lo, hi, drop, scale, seeds, consensus, normalize, offset)
