"""Top-K items per user by inner product, with each user's seen items excluded.

``topk_scores(users, items, k, seen=None)`` returns ``(values, indices)``, both (U, k), best
first: the ``k`` largest ``users[u] · items[i]`` over the items ``i`` not in ``seen[u]``.
``seen`` is a CSR pair ``(indptr (U + 1,), indices (nnz,))`` (see :func:`csr`). Slots a user
cannot fill (fewer than ``k`` unseen items) hold value ``-inf`` and index ``-1``. Ties
are broken arbitrarily (compare sets of values, not the order of equal scores).

Paths (through :func:`nbsupport.kernels.resolve`):

- ``reference``: the full (U, I) score matrix, masked, ``torch.topk``. Clear, not bounded.
- ``fast`` (CPU fast path, :func:`chunked`): users in chunks of ``user_chunk`` (one chunk
  per worker thread) and items in blocks of ``item_chunk``, so at most
  ``workers × user_chunk × item_chunk`` scores exist at once.
  The first block of a chunk is selected with ``torch.topk``; later blocks only pass on the
  scores above each user's current k-th best (one comparison per score, as a heap's
  rejection test in faiss), merged by a segmented sort of the few survivors.
- ``triton`` (:mod:`nbsupport.kernels.topk_triton`): the score tile and the seen mask in a
  Triton kernel, selection with ``torch.topk`` on the device, the same running merge.
"""

from __future__ import annotations

import numpy as np
import torch

from nbsupport.kernels import register, resolve

register("topk_scores", "reference", "nbsupport.kernels.topk:reference")
register("topk_scores", "fast", "nbsupport.kernels.topk:chunked")
register("topk_scores", "triton", "nbsupport.kernels.topk_triton:triton_topk_scores")

Seen = tuple[torch.Tensor, torch.Tensor]


def csr(user_ids, item_ids, n_users: int) -> Seen:
    """CSR ``(indptr, indices)`` of each user's items from parallel id arrays (duplicates kept)."""
    u, i = (x.long() if isinstance(x, torch.Tensor) else torch.tensor(np.asarray(x, dtype=np.int64))
            for x in (user_ids, item_ids))
    if u.shape != i.shape:
        raise ValueError(f"user_ids and item_ids differ in length: {tuple(u.shape)} vs {tuple(i.shape)}")
    if len(u) and (u.min() < 0 or u.max() >= n_users):
        raise ValueError(f"user ids must lie in [0, {n_users})")
    order = torch.argsort(u * (int(i.max()) + 1 if len(i) else 1) + i)
    counts = torch.bincount(u, minlength=n_users)
    indptr = torch.zeros(n_users + 1, dtype=torch.long)
    indptr[1:] = torch.cumsum(counts, 0)
    return indptr, i[order].contiguous()


def _check(users: torch.Tensor, items: torch.Tensor, k: int, seen: Seen | None) -> None:
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(f"users (U, d) and items (I, d) must share d; got {tuple(users.shape)} and {tuple(items.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if seen is not None:
        indptr, _ = seen
        if indptr.shape != (users.shape[0] + 1,):
            raise ValueError(f"seen indptr must have U + 1 = {users.shape[0] + 1} entries; got {tuple(indptr.shape)}")


def _seen_pairs(seen: Seen, start: int, stop: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row - start, item) for the seen entries of users start..stop-1."""
    indptr, indices = seen
    lo, hi = int(indptr[start]), int(indptr[stop])
    counts = indptr[start + 1 : stop + 1] - indptr[start:stop]
    rows = torch.repeat_interleave(torch.arange(stop - start), counts)
    return rows.to(device), indices[lo:hi].to(device)


def _finish(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    indices = torch.where(torch.isneginf(values), torch.full_like(indices, -1), indices)
    return values, indices


def reference(users: torch.Tensor, items: torch.Tensor, k: int, seen: Seen | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All scores at once, seen items set to ``-inf``, ``torch.topk`` (padded when k > I)."""
    _check(users, items, k, seen)
    scores = users @ items.T
    if seen is not None:
        rows, cols = _seen_pairs(seen, 0, users.shape[0], scores.device)
        scores[rows, cols] = float("-inf")
    if k > scores.shape[1]:
        pad = torch.full((scores.shape[0], k - scores.shape[1]), float("-inf"), dtype=scores.dtype, device=scores.device)
        scores = torch.cat([scores, pad], 1)
    values, indices = scores.topk(k, dim=1)
    return _finish(values, indices)


def merge(best_v: torch.Tensor, best_i: torch.Tensor, rows: torch.Tensor, vals: torch.Tensor, idx: torch.Tensor,
          k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold candidate (row, value, index) triples into each row's sorted top-k.

    Candidates are laid out in a padded (active rows, most candidates) matrix beside the
    rows' current best and reselected with ``torch.topk``; rows without candidates are untouched.
    """
    if len(rows) == 0:
        return best_v, best_i
    n = best_v.shape[0]
    order = torch.argsort(rows, stable=True)
    rows, vals, idx = rows[order], vals[order], idx[order]
    counts = torch.bincount(rows, minlength=n)
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(rows), device=rows.device) - start[rows]
    active = torch.nonzero(counts, as_tuple=True)[0]
    slot = torch.full((n,), -1, dtype=torch.long, device=rows.device)
    slot[active] = torch.arange(len(active), device=rows.device)
    width = int(counts.max())
    pad_v = torch.full((len(active), width), float("-inf"), dtype=best_v.dtype, device=best_v.device)
    pad_i = torch.full((len(active), width), -1, dtype=torch.long, device=best_v.device)
    pad_v[slot[rows], pos] = vals
    pad_i[slot[rows], pos] = idx
    v, j = torch.cat([best_v[active], pad_v], 1).topk(k, dim=1)
    best_v, best_i = best_v.clone(), best_i.clone()
    best_v[active] = v
    best_i[active] = torch.cat([best_i[active], pad_i], 1).gather(1, j)
    return best_v, best_i


def candidates(scores: torch.Tensor, threshold: torch.Tensor, width: int = 64
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, column, value) of the scores above each row's threshold.

    The row is cut into runs of ``width`` columns; a run's maximum (one cheap pass) says
    whether it holds any survivor, and only those runs are compared element by element.
    """
    n, b = scores.shape
    runs = b // width
    rows, cols, vals = [], [], []
    if runs:
        body = scores[:, : runs * width].reshape(n, runs, width)
        r, c = torch.nonzero(body.amax(-1) > threshold, as_tuple=True)
        block = body[r, c]
        keep = block > threshold[r]
        col = c[:, None] * width + torch.arange(width, device=scores.device)
        rows.append(r[:, None].expand(-1, width)[keep])
        cols.append(col[keep])
        vals.append(block[keep])
    if runs * width < b:
        tail = scores[:, runs * width :]
        r, c = torch.nonzero(tail > threshold, as_tuple=True)
        rows.append(r)
        cols.append(c + runs * width)
        vals.append(tail[r, c])
    return torch.cat(rows), torch.cat(cols), torch.cat(vals)


def select_block(scores: torch.Tensor, offset: int, best_v: torch.Tensor, best_i: torch.Tensor, k: int,
                 first: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold one masked (n, b) score block, whose column 0 is item ``offset``, into the running top-k."""
    n, b = scores.shape
    if first:
        v, i = scores.topk(min(k, b), dim=1)
        if v.shape[1] == k:
            return v, i + offset
        rows = torch.arange(n, device=v.device).repeat_interleave(v.shape[1])
        return merge(best_v, best_i, rows, v.reshape(-1), (i + offset).reshape(-1), k)
    rows, cols, vals = candidates(scores, best_v[:, -1:])
    return merge(best_v, best_i, rows, vals, cols + offset, k)


def _chunk_topk(users: torch.Tensor, blocks: list[tuple[int, torch.Tensor]], k: int,
                pairs: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of one user chunk over the pre-transposed item blocks."""
    dev = users.device
    best_v = torch.full((users.shape[0], k), float("-inf"), dtype=users.dtype, device=dev)
    best_i = torch.full((users.shape[0], k), -1, dtype=torch.long, device=dev)
    for b, (is_, block_t) in enumerate(blocks):
        scores = users @ block_t
        if pairs is not None:
            rows, cols = pairs
            lo, hi = torch.searchsorted(cols, torch.tensor([is_, is_ + block_t.shape[1]], device=dev)).tolist()
            scores[rows[lo:hi], cols[lo:hi] - is_] = float("-inf")
        best_v, best_i = select_block(scores, is_, best_v, best_i, k, b == 0)
    return best_v, best_i


def chunked(users: torch.Tensor, items: torch.Tensor, k: int, seen: Seen | None = None, user_chunk: int = 512,
            item_chunk: int = 8192, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU fast path: same result as :func:`reference` (ties aside) in bounded memory.

    User chunks run in parallel on ``workers`` threads (default: ``torch.get_num_threads()``),
    each with single-threaded torch ops, as faiss parallelizes over queries: many small
    ops with intra-op threads stall on a busy machine. Torch's thread count is set to 1 for
    the call and restored after. At most ``workers × user_chunk × item_chunk`` scores live.
    """
    from concurrent.futures import ThreadPoolExecutor

    _check(users, items, k, seen)
    n_users, n_items = users.shape[0], items.shape[0]
    dev = users.device
    blocks = [(is_, items[is_ : is_ + item_chunk].T.contiguous()) for is_ in range(0, n_items, item_chunk)]
    chunks = [(us, min(us + user_chunk, n_users)) for us in range(0, n_users, user_chunk)]
    values = torch.empty((n_users, k), dtype=users.dtype, device=dev)
    indices = torch.empty((n_users, k), dtype=torch.long, device=dev)

    def work(chunk: tuple[int, int]) -> None:
        us, ue = chunk
        pairs = None
        if seen is not None:  # this chunk's seen (row, item) sorted by item, to slice per block
            rows, cols = _seen_pairs(seen, us, ue, dev)
            order = torch.argsort(cols)
            pairs = (rows[order], cols[order])
        values[us:ue], indices[us:ue] = _chunk_topk(users[us:ue], blocks, k, pairs)

    workers = max(1, min(workers or torch.get_num_threads(), len(chunks)))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers == 1:
            for c in chunks:
                work(c)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(work, chunks))
    finally:
        torch.set_num_threads(before)
    return _finish(values, indices)


def topk_scores(users: torch.Tensor, items: torch.Tensor, k: int, seen: Seen | None = None,
                impl: str | None = None, **chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` (values, item indices) per user with ``seen`` items excluded, through the resolver."""
    fn = resolve("topk_scores", users.device, impl)
    return fn(users, items, k, seen, **chunks)
