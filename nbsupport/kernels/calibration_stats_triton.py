"""Triton path of the calibration statistics (see :mod:`nbsupport.kernels.calibration_stats`).

A grid of at most ``MAX_PROGRAMS`` programs; each walks blocks of ``BLOCK_R`` rows
(block ``pid``, ``pid + grid``, ...) and, per block, the classes in tiles of ``BLOCK_C``: an
online max, sum of ``exp((z - max)/T)`` and first-index argmax per row, then confidence
``1/sum``, correctness, NLL ``max + log(sum) - z_y/T`` and the bin index (the number of inner
edges ``<= confidence``). Each program adds each block's one-hot histogram (count,
Σ confidence, Σ correct per bin) to running sums in registers and stores them once, as its
own row of partials; the partials are summed over programs in float64 by ``torch.sum``.
No atomics, and the grid does not depend on the device, so the summation order is fixed
by the shapes alone and the result is deterministic.
Loads are up to 16 bytes wide when ``C`` and the row stride allow (float32: multiples of 4).
The temperature, ``n``, ``C`` and ``n_bins`` are runtime arguments; only tile sizes are ``constexpr``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nbsupport.kernels.calibration_stats import CalibrationStats, _edges_for, check_inputs

# At most this many programs, each walking every MAX_PROGRAMS-th block of rows. Fixed rather
# than sized from the device's SM count, so the summation order depends on the shapes alone;
# large enough for several waves of programs per GPU, so the last wave's idle share stays small.
MAX_PROGRAMS = 8192


@triton.jit
def _calibration_stats_kernel(
    X, Y, EDGES, CONF, CORRECT, NLL, PARTIAL,
    n, C_div, stride_div, inv_t, n_bins, n_blocks,
    VEC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, NB: tl.constexpr,
):
    # C and the row stride arrive divided by VEC, so the compiler knows both are multiples of
    # VEC and issues VEC-wide loads (tl.multiple_of on a scalar argument does not reach it)
    C = C_div * VEC
    stride_x = stride_div * VEC
    pid = tl.program_id(0)
    cols0 = tl.arange(0, BLOCK_C)
    j = tl.arange(0, NB)
    # bin = number of inner edges (EDGES[1 .. n_bins-1]) <= confidence
    inner = tl.load(EDGES + 1 + j, mask=j < n_bins - 1, other=float("inf"))
    acc_n = tl.zeros([NB], tl.float32)
    acc_conf = tl.zeros([NB], tl.float32)
    acc_corr = tl.zeros([NB], tl.float32)
    for blk in range(pid, n_blocks, tl.num_programs(0)):
        rows = blk * BLOCK_R + tl.arange(0, BLOCK_R)
        row_ok = rows < n
        rows64 = rows.to(tl.int64)
        m = tl.full([BLOCK_R], float("-inf"), tl.float32)
        s = tl.zeros([BLOCK_R], tl.float32)
        arg = tl.zeros([BLOCK_R], tl.int32)
        for start in range(0, C, BLOCK_C):
            cols = start + cols0
            ok = row_ok[:, None] & (cols[None, :] < C)
            x = tl.load(X + rows64[:, None] * stride_x + cols[None, :], mask=ok, other=float("-inf"))
            x = x.to(tl.float32) * inv_t
            # first column attaining the tile max; a later tile wins only when strictly larger
            tile_max, tile_arg = tl.max(x, axis=1, return_indices=True, return_indices_tie_break_left=True)
            arg = tl.where(tile_max > m, start + tile_arg, arg)
            m_new = tl.maximum(m, tile_max)
            scale = tl.where(m_new == float("-inf"), 0.0, tl.exp(m - m_new))
            e = tl.where(x == float("-inf"), 0.0, tl.exp(x - m_new[:, None]))
            s = s * scale + tl.sum(e, axis=1)
            m = m_new
        y = tl.load(Y + rows, mask=row_ok, other=0)
        z_y = tl.load(X + rows64 * stride_x + y, mask=row_ok, other=0.0).to(tl.float32) * inv_t
        s = tl.where(row_ok, s, 1.0)  # rows past n: keep their (unstored) values finite
        m = tl.where(row_ok, m, 0.0)
        conf = 1.0 / s
        correct = (arg == y).to(tl.float32)
        tl.store(CONF + rows, conf, mask=row_ok)
        tl.store(CORRECT + rows, correct.to(tl.int8), mask=row_ok)
        tl.store(NLL + rows, m + tl.log(s) - z_y, mask=row_ok)
        bins = tl.sum((conf[:, None] >= inner[None, :]).to(tl.int32), axis=1)
        hitf = ((bins[:, None] == j[None, :]) & row_ok[:, None]).to(tl.float32)
        acc_n += tl.sum(hitf, axis=0)
        acc_conf += tl.sum(hitf * conf[:, None], axis=0)  # rows past n: hitf 0, conf 1
        acc_corr += tl.sum(hitf * correct[:, None], axis=0)
    base = PARTIAL + pid * 3 * NB
    tl.store(base + j, acc_n)
    tl.store(base + NB + j, acc_conf)
    tl.store(base + 2 * NB + j, acc_corr)


def vector_width(c: int, stride: int, element_size: int) -> int:
    """Elements per load (the kernel's ``VEC``): the widest load of at most 16 bytes whose
    element count divides both ``C`` and the row stride."""
    return next(v for v in (8, 4, 2, 1) if v * element_size <= 16 and c % v == 0 and stride % v == 0)


def triton_calibration_stats(
    logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    n_bins: int = 15,
    edges: torch.Tensor | None = None,
    block_rows: int | None = None,
    block_cols: int | None = None,
    num_warps: int = 8,
    max_programs: int = MAX_PROGRAMS,
) -> CalibrationStats:
    """Triton path: float32 per-sample values, float64 histogram; not differentiable.

    Tiles default to ``BLOCK_C = min(256, next_pow2(C))`` classes by ``2048 / BLOCK_C`` rows:
    8 values per thread at ``num_warps=8``, which keeps the kernel near 64 registers per thread.
    """
    check_inputs(logits, labels, temperature)
    logits = logits if logits.stride(1) == 1 else logits.contiguous()
    n, c = logits.shape
    e = _edges_for(edges, n_bins, torch.float32, logits.device).contiguous()
    nb_used = e.numel() - 1
    nb = triton.next_power_of_2(max(nb_used, 2))
    bc = block_cols or min(256, triton.next_power_of_2(c))
    br = block_rows or max(1, 2048 // bc)
    vec = vector_width(c, logits.stride(0), logits.element_size())
    n_blocks = triton.cdiv(n, br)
    grid = min(n_blocks, max_programs)
    conf = torch.empty(n, dtype=torch.float32, device=logits.device)
    correct = torch.empty(n, dtype=torch.int8, device=logits.device)
    nll = torch.empty(n, dtype=torch.float32, device=logits.device)
    partial = torch.empty(grid, 3, nb, dtype=torch.float32, device=logits.device)
    _calibration_stats_kernel[(grid,)](
        logits, labels.contiguous(), e, conf, correct, nll, partial,
        n, c // vec, logits.stride(0) // vec, 1.0 / float(temperature), nb_used, n_blocks,
        VEC=vec, BLOCK_R=br, BLOCK_C=bc, NB=nb, num_warps=num_warps,
    )
    hist = partial.sum(0, dtype=torch.float64)[:, :nb_used].T.contiguous()
    return CalibrationStats(conf, correct.view(torch.bool), nll, hist)
