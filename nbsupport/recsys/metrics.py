"""Top-K ranking metrics, with RecBole's definitions (``recbole/evaluator/metrics.py``, v1.2.1).

Inputs: ``ranked`` (n_users, K) item ids, best first, already excluding each user's seen
items (the slots a model could not fill hold -1 and never hit), and ``relevant``: one
collection of held-out item ids per row. With ``hit[u, j] = ranked[u, j] in R(u)``:

- ``HR@K`` = 1 if any hit in the top K;
- ``Recall@K`` = hits / |R(u)|;
- ``Precision@K`` = hits / K (K, not the number of filled slots);
- ``NDCG@K`` = Σ_j hit_j / log2(j + 1) divided by the ideal DCG over min(|R(u)|, K) hits;
- ``MRR@K`` = 1 / rank of the first hit, 0 without a hit in the top K;
- ``MAP@K`` = Σ_j hit_j · Precision@j / min(|R(u)|, K) (RecBole's normalization; others
  divide by |R(u)| or by the number of hits).

Every metric is averaged over the users with at least one relevant item (users without
any are dropped, as RecBole drops them). Binary relevance only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

NAMES = ("HR", "Recall", "Precision", "NDCG", "MRR", "MAP")


def hits(ranked: np.ndarray, relevant: Sequence[Iterable[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (n, K) hit matrix and the number of relevant items per row."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be (n_users, K); got shape {ranked.shape}")
    if len(relevant) != len(ranked):
        raise ValueError(f"relevant has {len(relevant)} rows, ranked has {len(ranked)}")
    hit = np.zeros(ranked.shape, dtype=bool)
    n_rel = np.zeros(len(ranked), dtype=np.int64)
    for u, rel in enumerate(relevant):
        rel = np.unique(np.asarray(list(rel), dtype=np.int64))
        n_rel[u] = len(rel)
        hit[u] = np.isin(ranked[u], rel) & (ranked[u] >= 0)
    return hit, n_rel


def per_user(hit: np.ndarray, n_rel: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Each metric at cutoff ``k`` for every row (rows without relevant items included as NaN)."""
    if not 1 <= k <= hit.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the ranked list length {hit.shape[1]}")
    h = hit[:, :k].astype(np.float64)
    n_rel = n_rel.astype(np.float64)
    pos = np.arange(1, k + 1)
    n_hit = h.sum(1)
    discount = 1.0 / np.log2(pos + 1)
    ideal_len = np.minimum(n_rel, k).astype(np.int64)
    idcg = np.concatenate([[0.0], np.cumsum(discount)])[ideal_len]
    first = np.where(h.any(1), h.argmax(1) + 1, np.inf)
    precision_at_j = np.cumsum(h, 1) / pos
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "HR": (n_hit > 0).astype(np.float64),
            "Recall": n_hit / n_rel,
            "Precision": n_hit / k,
            "NDCG": (h * discount).sum(1) / idcg,
            "MRR": 1.0 / first,
            "MAP": (h * precision_at_j).sum(1) / np.minimum(n_rel, k),
        }
    empty = n_rel == 0
    return {name: np.where(empty, np.nan, v) for name, v in out.items()}


def ranking_metrics(ranked: np.ndarray, relevant: Sequence[Iterable[int]], ks: Iterable[int] = (10, 20),
                    names: Iterable[str] = NAMES) -> dict[str, float]:
    """``{"HR@10": ..., "NDCG@20": ...}``: means over users with at least one relevant item."""
    hit, n_rel = hits(ranked, relevant)
    out: dict[str, float] = {}
    for k in ks:
        values = per_user(hit, n_rel, k)
        for name in names:
            if name not in values:
                raise ValueError(f"unknown metric {name!r}; choose from {NAMES}")
            v = values[name][n_rel > 0]
            out[f"{name}@{k}"] = float(v.mean()) if len(v) else float("nan")
    return out


def sampled_metrics(pos_scores: np.ndarray, neg_scores: np.ndarray, ks: Iterable[int] = (1, 10)) -> dict[str, float]:
    """Sampled protocol (1 positive + N negatives per test case, as A-LLMRec and NCF use).

    ``pos_scores`` (n,), ``neg_scores`` (n, N). The positive's rank is 1 + the number of
    negatives scoring at least as high (ties count against the model). Returns ``Hit@k`` and ``NDCG@k`` (one relevant item: ``1/log2(rank + 1)``),
    labelled ``sampled``: they are not comparable with full-catalogue numbers.
    """
    pos = np.asarray(pos_scores, dtype=np.float64)[:, None]
    neg = np.asarray(neg_scores, dtype=np.float64)
    rank = 1 + (neg >= pos).sum(1)
    out = {}
    for k in ks:
        inside = rank <= k
        out[f"sampled Hit@{k}"] = float(inside.mean())
        out[f"sampled NDCG@{k}"] = float(np.where(inside, 1.0 / np.log2(rank + 1), 0.0).mean())
    return out
