"""Top-K items per user by inner product, with each user's seen items excluded.

``topk_scores(users, items, k, seen=None)`` returns ``(values, indices)``, both (U, k), best
first: the ``k`` largest ``users[u] · items[i]`` over the items ``i`` not in ``seen[u]``.
``seen`` is a CSR pair ``(indptr (U + 1,), indices (nnz,))`` (see :func:`csr`). Slots a user
cannot fill (fewer than ``k`` unseen items) hold value ``-inf`` and index ``-1``. Ties
are broken arbitrarily (compare sets of values, not the order of equal scores).

Paths (through :func:`nbsupport.kernels.resolve`):

- ``reference``: the full (U, I) score matrix, masked, ``torch.topk``. Clear, not bounded.
- ``compile`` (CPU fast path, :func:`chunked`): users in chunks of ``user_chunk`` and items
  in blocks of ``item_chunk``, so at most ``user_chunk × item_chunk`` scores exist at once.
  The first block of a chunk is selected with ``torch.topk``; later blocks only pass on the
  scores above each user's current k-th best (one comparison per score, as a heap's
  rejection test in faiss), merged by a segmented sort of the few survivors.
- ``triton`` (:mod:`nbsupport.kernels.topk_triton`): the score tile and the seen mask in a
  Triton kernel, selection with ``torch.topk`` on the device, the same running merge.
"""

from __future__ import annotations

import torch

from nbsupport.kernels import register, resolve

register("topk_scores", "reference", "nbsupport.kernels.topk:reference")
register("topk_scores", "compile", "nbsupport.kernels.topk:chunked")
register("topk_scores", "triton", "nbsupport.kernels.topk_triton:triton_topk_scores")

Seen = tuple[torch.Tensor, torch.Tensor]


def csr(user_ids, item_ids, n_users: int) -> Seen:
    """CSR ``(indptr, indices)`` of each user's items from parallel id arrays (duplicates kept)."""
    u = torch.as_tensor(user_ids, dtype=torch.long)
    i = torch.as_tensor(item_ids, dtype=torch.long)
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
    """Merge candidate (row, value, index) triples into each row's sorted top-k (segmented sort)."""
    n = best_v.shape[0]
    r_all = torch.cat([torch.arange(n, device=rows.device).repeat_interleave(k), rows])
    v_all = torch.cat([best_v.reshape(-1), vals])
    i_all = torch.cat([best_i.reshape(-1), idx])
    order = torch.argsort(v_all, descending=True, stable=True)
    order = order[torch.argsort(r_all[order], stable=True)]
    r_sorted = r_all[order]
    counts = torch.bincount(r_sorted, minlength=n)
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(order), device=rows.device) - start[r_sorted]
    keep = pos < k
    new_v = torch.full_like(best_v, float("-inf"))
    new_i = torch.full_like(best_i, -1)
    new_v[r_sorted[keep], pos[keep]] = v_all[order][keep]
    new_i[r_sorted[keep], pos[keep]] = i_all[order][keep]
    return new_v, new_i


def select_block(scores: torch.Tensor, offset: int, best_v: torch.Tensor, best_i: torch.Tensor, k: int,
                 first: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold one masked (n, b) score block, whose column 0 is item ``offset``, into the running top-k."""
    n, b = scores.shape
    if not first:
        rows, cols = torch.nonzero(scores > best_v[:, -1:], as_tuple=True)
        if len(rows) <= 4 * n * k:  # few survivors: segmented merge of just those
            return merge(best_v, best_i, rows, scores[rows, cols], cols + offset, k)
    kk = min(k, b)
    v, i = scores.topk(kk, dim=1)
    if first and kk == k:
        return v, i + offset
    return merge(best_v, best_i, torch.arange(n, device=v.device).repeat_interleave(kk), v.reshape(-1),
                 (i + offset).reshape(-1), k)


def chunked(users: torch.Tensor, items: torch.Tensor, k: int, seen: Seen | None = None, user_chunk: int = 512,
            item_chunk: int = 32768) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU fast path: same result as :func:`reference` (ties aside) in bounded memory."""
    _check(users, items, k, seen)
    n_users, n_items = users.shape[0], items.shape[0]
    values = torch.empty(n_users, k, dtype=users.dtype, device=users.device)
    indices = torch.empty(n_users, k, dtype=torch.long, device=users.device)
    for us in range(0, n_users, user_chunk):
        ue = min(us + user_chunk, n_users)
        u = users[us:ue]
        best_v = torch.full((ue - us, k), float("-inf"), dtype=users.dtype, device=users.device)
        best_i = torch.full((ue - us, k), -1, dtype=torch.long, device=users.device)
        if seen is not None:
            rows, cols = _seen_pairs(seen, us, ue, users.device)
            order = torch.argsort(cols)
            rows, cols = rows[order], cols[order]
        for b, is_ in enumerate(range(0, n_items, item_chunk)):
            ie = min(is_ + item_chunk, n_items)
            scores = u @ items[is_:ie].T
            if seen is not None:
                lo, hi = torch.searchsorted(cols, torch.tensor([is_, ie], device=cols.device)).tolist()
                scores[rows[lo:hi], cols[lo:hi] - is_] = float("-inf")
            best_v, best_i = select_block(scores, is_, best_v, best_i, k, first=b == 0)
        values[us:ue], indices[us:ue] = best_v, best_i
    return _finish(values, indices)


def topk_scores(users: torch.Tensor, items: torch.Tensor, k: int, seen: Seen | None = None,
                impl: str | None = None, **chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` (values, item indices) per user with ``seen`` items excluded, through the resolver."""
    fn = resolve("topk_scores", users.device, impl)
    return fn(users, items, k, seen, **chunks)
