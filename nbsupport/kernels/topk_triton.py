"""Triton path of ``topk_scores`` (see :mod:`nbsupport.kernels.topk`).

``_score_tile_kernel`` computes one (BLOCK_U × BLOCK_I) tile of ``users · itemsᵀ`` for an
item block, accumulating over ``d`` in steps of ``BLOCK_D`` with ``tl.dot``;
``_mask_seen_kernel`` (one program per user) walks the user's CSR list of seen items and
writes ``-inf`` over those inside the block. Selection then runs on the device: the first
block with ``torch.topk``, later blocks through the same threshold-and-merge as the CPU path,
so at most ``user_chunk × item_chunk`` scores exist at once. Sizes are runtime arguments.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nbsupport.kernels.topk import Seen, _check, _finish, select_block


@triton.jit
def _score_tile_kernel(U, V, S, n_users, n_items, d, stride_u, stride_v, stride_s,
                       BLOCK_U: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_u = tl.program_id(0)
    pid_i = tl.program_id(1)
    rows = pid_u * BLOCK_U + tl.arange(0, BLOCK_U)
    cols = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    acc = tl.zeros([BLOCK_U, BLOCK_I], dtype=tl.float32)
    for start in range(0, d, BLOCK_D):
        ks = start + tl.arange(0, BLOCK_D)
        u = tl.load(U + rows[:, None].to(tl.int64) * stride_u + ks[None, :],
                    mask=(rows[:, None] < n_users) & (ks[None, :] < d), other=0.0)
        v = tl.load(V + cols[None, :].to(tl.int64) * stride_v + ks[:, None],
                    mask=(cols[None, :] < n_items) & (ks[:, None] < d), other=0.0)
        acc += tl.dot(u.to(tl.float32), v.to(tl.float32), input_precision="ieee")
    out = S + rows[:, None].to(tl.int64) * stride_s + cols[None, :]
    tl.store(out, acc, mask=(rows[:, None] < n_users) & (cols[None, :] < n_items))


@triton.jit
def _mask_seen_kernel(S, INDPTR, INDICES, user_start, item_start, item_stop, stride_s, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    lo = tl.load(INDPTR + user_start + row)
    hi = tl.load(INDPTR + user_start + row + 1)
    for start in range(lo, hi, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        item = tl.load(INDICES + offs, mask=offs < hi, other=-1)
        inside = (offs < hi) & (item >= item_start) & (item < item_stop)
        ptr = S + row.to(tl.int64) * stride_s + (item - item_start)
        tl.store(ptr, tl.full([BLOCK], float("-inf"), tl.float32), mask=inside)


def _pow2(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, triton.next_power_of_2(n)))


def triton_topk_scores(users: torch.Tensor, items: torch.Tensor, k: int, seen: Seen | None = None,
                       user_chunk: int = 4096, item_chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton path: scores and seen mask in Triton, selection with torch.topk and the running merge."""
    _check(users, items, k, seen)
    users, items = users.float().contiguous(), items.float().contiguous()
    n_users, n_items, d = users.shape[0], items.shape[0], users.shape[1]
    dev = users.device
    if seen is not None:
        indptr, indices = (t.to(dev).contiguous() for t in seen)
    values = torch.full((n_users, k), float("-inf"), device=dev)
    indices_out = torch.full((n_users, k), -1, dtype=torch.long, device=dev)
    bu, bi, bd = _pow2(min(user_chunk, n_users), 16, 64), _pow2(min(item_chunk, n_items), 16, 64), _pow2(d, 16, 64)
    for us in range(0, n_users, user_chunk):
        ue = min(us + user_chunk, n_users)
        for b, is_ in enumerate(range(0, n_items, item_chunk)):
            ie = min(is_ + item_chunk, n_items)
            scores = torch.empty(ue - us, ie - is_, device=dev)
            grid = (triton.cdiv(ue - us, bu), triton.cdiv(ie - is_, bi))
            _score_tile_kernel[grid](users[us:ue], items[is_:ie], scores, ue - us, ie - is_, d,
                                     users.stride(0), items.stride(0), scores.stride(0),
                                     BLOCK_U=bu, BLOCK_I=bi, BLOCK_D=bd)
            if seen is not None:
                _mask_seen_kernel[(ue - us,)](scores, indptr, indices, us, is_, ie, scores.stride(0), BLOCK=64)
            values[us:ue], indices_out[us:ue] = select_block(scores, is_, values[us:ue], indices_out[us:ue], k,
                                                             b == 0)
    return _finish(values, indices_out)
