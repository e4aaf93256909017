"""Top-K scoring, 20k users x 200k items x d=64, K=100: our CPU fast path (``topk_scores``,
``fast``) against faiss-cpu's exact inner-product search (``IndexFlatIP``) on the same vectors.

Two cases: plain top-K, and top-K with each user's 100 seen items excluded. faiss cannot
exclude per-query items itself, so its row searches K + 100 and drops the seen items
afterwards (the usual workaround, timed with it). The float64 reference is not run: it would
hold the full 20k x 200k score matrix (16 GB in float32). ``python benchmarks/bench_recsys.py``
writes ``results/recsys.json`` / ``.md``, ``results/recsys_agreement.json`` (overlap of the
top-K sets of both paths; differences can only come from near-ties in float32) and
``results/recsys_cpu_time.json`` (CPU seconds of each path on 4k users: fair on a shared machine).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from harness import RESULTS, run_cases

N_USERS, N_ITEMS, D, K, N_SEEN = 20_000, 200_000, 64, 100, 100
FAISS = "faiss-cpu IndexFlatIP"
OURS = "topk_scores (fast, chunked)"


def inputs(n_users: int = N_USERS, n_items: int = N_ITEMS, seen: bool = False):
    g = torch.Generator().manual_seed(0)
    users = torch.randn(n_users, D, generator=g)
    items = torch.randn(n_items, D, generator=g)
    history = None
    if seen:
        rng = np.random.default_rng(0)
        history = np.sort(np.stack([rng.choice(n_items, N_SEEN, replace=False) for _ in range(n_users)]), 1)
    return users, items, history


def faiss_search(index, users: np.ndarray, history: np.ndarray | None):
    """faiss top-K; with a (users, seen) sorted history, search K + seen and drop the seen items."""
    if history is None:
        return index.search(users, K)
    scores, idx = index.search(users, K + history.shape[1])
    seen = np.zeros(idx.shape, dtype=bool)
    last = history.shape[1] - 1
    rows = np.arange(len(idx))
    for c in range(idx.shape[1]):  # vectorized over users: is column c among the user's seen items?
        j = np.minimum(_row_searchsorted(history, idx[:, c]), last)
        seen[:, c] = history[rows, j] == idx[:, c]
    order = np.argsort(seen, axis=1, kind="stable")[:, :K]  # unseen first, rank order kept
    return np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)


def _row_searchsorted(sorted_rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(sorted_rows[r], values[r])`` for every row r at once."""
    span = int(max(sorted_rows.max(), values.max())) + 1
    offset = np.arange(len(sorted_rows), dtype=np.int64) * span
    flat = (sorted_rows + offset[:, None]).ravel()
    return np.searchsorted(flat, values + offset) - np.arange(len(sorted_rows)) * sorted_rows.shape[1]


def make(impl: str, seen: bool = False, n_users: int = N_USERS, n_items: int = N_ITEMS):
    users, items, history = inputs(n_users, n_items, seen)
    if impl == FAISS:
        import faiss

        index = faiss.IndexFlatIP(D)
        index.add(items.numpy())
        u = users.numpy()
        return lambda: faiss_search(index, u, history)
    from nbsupport.kernels.topk import csr, topk_scores

    csr_seen = None
    if history is not None:
        csr_seen = csr(np.repeat(np.arange(n_users), N_SEEN), history.ravel(), n_users)
    return lambda: topk_scores(users, items, K, csr_seen, impl="fast")


def agreement(n_users: int = 2000) -> list[dict]:
    """Top-K overlap of both paths on the first ``n_users`` users, with and without seen items."""
    rows = []
    for seen in (False, True):
        f_scores, f_idx = make(FAISS, seen, n_users=n_users)()
        o_scores, o_idx = make(OURS, seen, n_users=n_users)()
        o_idx, o_scores = o_idx.numpy(), o_scores.numpy()
        overlap = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(f_idx, o_idx)]))
        rows.append({"case": f"{n_users} users x {N_ITEMS} items, seen excluded: {seen}", "overlap": overlap,
                     "max_abs_score_diff": float(np.abs(np.sort(f_scores, 1) - np.sort(o_scores, 1)).max()),
                     "kth_scores_equal": bool(np.allclose(f_scores[:, -1], o_scores[:, -1], atol=1e-4))})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def cpu_seconds(n_users: int = 4000) -> list[dict]:
    """CPU time (all threads, ``time.process_time``) and wall time of each path on ``n_users`` users.

    On a shared machine wall time depends on the CPU share each process got; CPU time is the
    work done, the fairer comparison there. Inputs are built before timing; one warm-up call.
    """
    import time

    rows = []
    for seen in (False, True):
        for impl in (FAISS, OURS):
            fn = make(impl, seen, n_users=n_users)
            fn()
            c, w = time.process_time(), time.perf_counter()
            fn()
            rows.append({"case": f"{n_users} users x {N_ITEMS} items, seen excluded: {seen}", "impl": impl,
                         "cpu_seconds": time.process_time() - c, "wall_seconds": time.perf_counter() - w})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    cases = []
    for seen in (False, True):
        label = f"{N_USERS // 1000}k x {N_ITEMS // 1000}k x d{D}, K={K}" + (f", {N_SEEN} seen/user excluded" if seen else "")
        cases += [{"case": label, "impl": impl, "make": "make", "params": {"impl": impl, "seen": seen}}
                  for impl in (FAISS, OURS)]
    run_cases("recsys", __file__, cases, repeat=1)
    rows = agreement()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recsys_agreement.json").write_text(json.dumps(rows, indent=1))
    (RESULTS / "recsys_cpu_time.json").write_text(json.dumps(cpu_seconds(), indent=1))


if __name__ == "__main__":
    main()
