"""Triton path of the calibration statistics (see :mod:`nbsupport.kernels.calibration_stats`).

One program handles ``BLOCK_R`` rows and walks the classes in tiles of ``BLOCK_C``: an online
max, sum of ``exp((z - max)/T)`` and first-index argmax per row, then confidence ``1/sum``,
correctness, NLL ``max + log(sum) - z_y/T`` and the bin index (the number of inner edges
``<= confidence``). Each program writes its own partial histogram (count, Σ confidence,
Σ correct per bin, via a one-hot reduction over its rows); the partials are summed over
programs in float64 by ``torch.sum``. No atomics, so the result is deterministic.
The temperature, ``n``, ``C`` and ``n_bins`` are runtime arguments; only tile sizes are ``constexpr``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nbsupport.kernels.calibration_stats import CalibrationStats, _edges_for, check_inputs


@triton.jit
def _calibration_stats_kernel(
    X, Y, EDGES, CONF, CORRECT, NLL, PARTIAL,
    n, C, stride_x, inv_t, n_bins,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, NB: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < n
    rows64 = rows.to(tl.int64)
    cols0 = tl.arange(0, BLOCK_C)
    m = tl.full([BLOCK_R], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK_R], tl.float32)
    arg = tl.zeros([BLOCK_R], tl.int32)
    for start in range(0, C, BLOCK_C):
        cols = start + cols0
        ok = row_ok[:, None] & (cols[None, :] < C)
        x = tl.load(X + rows64[:, None] * stride_x + cols[None, :], mask=ok, other=float("-inf"))
        x = x.to(tl.float32) * inv_t
        tile_max = tl.max(x, axis=1)
        # first column attaining the tile max; a later tile wins only when strictly larger
        tile_arg = tl.min(tl.where(x == tile_max[:, None], cols[None, :], 2147483647), axis=1)
        arg = tl.where(tile_max > m, tile_arg, arg)
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
    nll = m + tl.log(s) - z_y
    tl.store(CONF + rows, conf, mask=row_ok)
    tl.store(CORRECT + rows, correct.to(tl.int8), mask=row_ok)
    tl.store(NLL + rows, nll, mask=row_ok)
    # bin = number of inner edges (EDGES[1 .. n_bins-1]) <= conf
    j = tl.arange(0, NB)
    inner = tl.load(EDGES + 1 + j, mask=j < n_bins - 1, other=float("inf"))
    bins = tl.sum((conf[:, None] >= inner[None, :]).to(tl.int32), axis=1)
    hit = (bins[:, None] == j[None, :]) & row_ok[:, None]
    hitf = hit.to(tl.float32)
    base = PARTIAL + pid * 3 * NB
    tl.store(base + j, tl.sum(hitf, axis=0))
    tl.store(base + NB + j, tl.sum(hitf * tl.where(row_ok, conf, 0.0)[:, None], axis=0))
    tl.store(base + 2 * NB + j, tl.sum(hitf * correct[:, None], axis=0))


def triton_calibration_stats(
    logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    n_bins: int = 15,
    edges: torch.Tensor | None = None,
    block_rows: int = 16,
    block_cols: int | None = None,
) -> CalibrationStats:
    """Triton path: float32 per-sample values, float64 histogram; not differentiable."""
    check_inputs(logits, labels, temperature)
    logits = logits if logits.stride(1) == 1 else logits.contiguous()
    n, c = logits.shape
    e = _edges_for(edges, n_bins, torch.float32, logits.device).contiguous()
    nb_used = e.numel() - 1
    nb = triton.next_power_of_2(max(nb_used, 2))
    bc = block_cols or min(256, triton.next_power_of_2(c))
    grid = triton.cdiv(n, block_rows)
    conf = torch.empty(n, dtype=torch.float32, device=logits.device)
    correct = torch.empty(n, dtype=torch.int8, device=logits.device)
    nll = torch.empty(n, dtype=torch.float32, device=logits.device)
    partial = torch.empty(grid, 3, nb, dtype=torch.float32, device=logits.device)
    _calibration_stats_kernel[(grid,)](
        logits, labels.contiguous(), e, conf, correct, nll, partial,
        n, c, logits.stride(0), 1.0 / float(temperature), nb_used,
        BLOCK_R=block_rows, BLOCK_C=bc, NB=nb,
    )
    hist = partial.double().sum(0)[:, :nb_used].T.contiguous()
    return CalibrationStats(conf, correct.bool(), nll, hist)
