"""Warm and cold-start splits, and evaluation that reports cold, warm and overall separately.

- ``warm``: leave-last-out by timestamp; each user's latest interaction is the test item
  (users with a single interaction keep it in training). Every test user and item is seen.
- ``item-cold``: a seeded ``share`` of items is held out with all its interactions (test
  group ``cold``); of the rest, each user's latest interaction is a ``warm`` test item.
- ``user-cold``: a seeded ``share`` of users is held out; their interactions form the
  ``cold`` test group, except their first ``first_k`` (by time), which go to training when
  asked ("a few interactions given"); the other users are split leave-last-out (``warm``).

:func:`evaluate` ranks the full catalogue, excluding each user's training items (on an
item-cold split, cold test items among the cold items and warm ones among the warm items,
unless asked otherwise), and computes :mod:`nbsupport.recsys.metrics` per group;
:func:`evaluate_users` gives the same per user, and :func:`paired_users` pairs two arms per
seed and user (a seeds x users effect, one row per trained model). ``protocol="sampled"``
ranks each test item against ``n_neg`` sampled items the user never interacted with
(A-LLMRec's 1 + 19, NCF's 1 + 99); its rows are labelled ``sampled`` and are not comparable
with full ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from nbsupport.kernels.topk import csr, topk_scores
from nbsupport.recsys.features import Interactions
from nbsupport.recsys.metrics import hits, per_user, ranking_metrics, sampled_metrics

KINDS = ("warm", "item-cold", "user-cold")


@dataclass
class Split:
    """Training interactions and test interactions labelled by group (``warm`` or ``cold``)."""

    kind: str
    data: Interactions
    train: pd.DataFrame  # user_id, item_id, rating, timestamp
    test: pd.DataFrame  # the same columns plus group
    cold_items: np.ndarray
    cold_users: np.ndarray

    @property
    def n_users(self) -> int:
        return self.data.n_users

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def seen(self) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR of each user's training items (excluded when ranking)."""
        return csr(self.train.user_id.to_numpy(), self.train.item_id.to_numpy(), self.n_users)

    def known_items(self) -> torch.Tensor:
        """Boolean (n_items,): the item has at least one training interaction."""
        known = torch.zeros(self.n_items, dtype=torch.bool)
        known[torch.tensor(self.train.item_id.unique())] = True
        return known

    def known_users(self) -> torch.Tensor:
        known = torch.zeros(self.n_users, dtype=torch.bool)
        known[torch.tensor(self.train.user_id.unique())] = True
        return known

    def __repr__(self) -> str:
        groups = self.test.group.value_counts().to_dict()
        return (f"Split({self.kind}: {len(self.train)} train interactions, test {groups}, "
                f"{len(self.cold_items)} cold items, {len(self.cold_users)} cold users)")


def _last_out(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's latest interaction (ties broken by item id) as test, if the user has two or more."""
    df = df.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    last = df.groupby("user_id").cumcount(ascending=False) == 0
    many = df.groupby("user_id").user_id.transform("size") > 1
    return df[~(last & many)], df[last & many]


def _check_share(share: float) -> None:
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")


def warm(data: Interactions) -> Split:
    train, test = _last_out(data.ratings)
    return Split("warm", data, train.reset_index(drop=True), test.assign(group="warm").reset_index(drop=True),
                 np.array([], dtype=np.int64), np.array([], dtype=np.int64))


def item_cold(data: Interactions, share: float = 0.2, seed: int = 0) -> Split:
    _check_share(share)
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(data.n_items, size=round(share * data.n_items), replace=False))
    is_cold = data.ratings.item_id.isin(cold)
    train, warm_test = _last_out(data.ratings[~is_cold])
    test = pd.concat([warm_test.assign(group="warm"), data.ratings[is_cold].assign(group="cold")])
    return Split("item-cold", data, train.reset_index(drop=True), test.reset_index(drop=True), cold,
                 np.array([], dtype=np.int64))


def user_cold(data: Interactions, share: float = 0.2, first_k: int = 0, seed: int = 0) -> Split:
    _check_share(share)
    if first_k < 0:
        raise ValueError(f"first_k must be >= 0, got {first_k}")
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(data.n_users, size=round(share * data.n_users), replace=False))
    is_cold = data.ratings.user_id.isin(cold)
    theirs = data.ratings[is_cold].sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    given = theirs.groupby("user_id").cumcount() < first_k
    train, warm_test = _last_out(data.ratings[~is_cold])
    train = pd.concat([train, theirs[given]])
    test = pd.concat([warm_test.assign(group="warm"), theirs[~given].assign(group="cold")])
    return Split("user-cold", data, train.reset_index(drop=True), test.reset_index(drop=True),
                 np.array([], dtype=np.int64), cold)


def split(data: Interactions, kind: str, **kwargs) -> Split:
    """``split(data, "warm" | "item-cold" | "user-cold", share=0.2, first_k=0, seed=0)``."""
    makers = {"warm": warm, "item-cold": item_cold, "user-cold": user_cold}
    if kind not in makers:
        raise ValueError(f"unknown split {kind!r}; choose one of {KINDS}")
    return makers[kind](data, **kwargs)


def _groups(test: pd.DataFrame) -> dict[str, pd.DataFrame]:
    out = {g: test[test.group == g] for g in ("warm", "cold") if (test.group == g).any()}
    out["overall"] = test
    return out


CANDIDATES = ("own", "cold", "all")


def _ranked(users: torch.Tensor, items: torch.Tensor, s: Split, uid: torch.Tensor, k: int,
            among: str) -> np.ndarray:
    """(len(uid), k) best item ids, each user's training items excluded, among the cold items
    (``among="cold"``), the items that are not cold (``"warm"``) or all items (``"all"``).
    Scores are ranked on the vectors' device (the model's); the ids come back on the CPU."""
    if among == "cold":
        pool = torch.as_tensor(s.cold_items)  # never seen in training: nothing to exclude
        _, idx = topk_scores(users[uid.to(users.device)], items[pool.to(items.device)], min(k, len(pool)), None)
        idx = idx.cpu()
        ranked = torch.where(idx >= 0, pool[idx.clamp(min=0)], -1)
        return torch.cat([ranked, torch.full((len(uid), k - ranked.shape[1]), -1)], 1).numpy()
    indptr, indices = _subset_csr(s.seen(), uid)
    if among == "warm" and len(s.cold_items):
        cold = torch.as_tensor(s.cold_items)
        rows = [torch.cat([indices[indptr[r] : indptr[r + 1]], cold]) for r in range(len(uid))]
        indptr = torch.tensor([0] + [len(r) for r in rows]).cumsum(0)
        indices = torch.cat(rows)
    _, idx = topk_scores(users[uid.to(users.device)], items, k, (indptr, indices))
    return idx.cpu().numpy()


def _among(group: str, candidates: str, s: Split) -> str:
    """Which items a test group is ranked among, for ``candidates`` (see :func:`evaluate`)."""
    if candidates not in CANDIDATES:
        raise ValueError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
    if candidates == "all" or not len(s.cold_items) or group == "overall":
        return "all"
    if group == "cold":
        return "cold"
    return "warm" if candidates == "own" else "all"


def evaluate(model, s: Split, ks=(10, 20), protocol: str = "full", n_neg: int = 19, depth: int = 100,
             seed: int = 0, candidates: str = "own") -> pd.DataFrame:
    """Metrics per test group (rows ``warm``, ``cold``, ``overall``) for a fitted model.

    ``model.user_vectors()`` (n_users, d) and ``model.item_vectors()`` (n_items, d) define
    the scores. ``protocol="full"``: rank the candidates minus the user's training items, keep
    the top ``depth`` (MRR is reported at ``depth``), relevant = the user's test items in the
    group. On an item-cold split, ``candidates="own"`` (the default) ranks each group among
    the items of its kind: cold test items among the cold items, as the cold-start papers
    rank them, and warm test items among the warm items; ``"cold"`` does so for the cold
    group only (warm test items then rank against every item); ``"all"`` ranks every group
    against the whole catalogue, where a model that scores cold and warm items through
    different vectors gains by separating them (see
    :class:`nbsupport.recsys.models.ColdFirstRandom`). The ``overall`` group and the other
    splits always rank the whole catalogue. ``protocol="sampled"``: each test
    interaction against ``n_neg`` items the user never interacted with, drawn uniformly (seeded).
    """
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    _among("overall", candidates, s)
    with torch.no_grad():
        users = model.user_vectors().float()
        items = model.item_vectors().float()
    rows = {}
    if protocol == "sampled":
        users, items = users.cpu(), items.cpu()
        rng = np.random.default_rng(seed)
        every = s.data.ratings.groupby("user_id").item_id.apply(set).to_dict()
        for g, df in _groups(s.test).items():
            u, i = df.user_id.to_numpy(), df.item_id.to_numpy()
            neg = np.empty((len(df), n_neg), dtype=np.int64)
            for r, user in enumerate(u):
                pool = np.setdiff1d(np.arange(s.n_items), list(every[user]), assume_unique=True)
                if len(pool) < n_neg:
                    raise ValueError(f"user {user} has fewer than {n_neg} items to sample negatives from")
                neg[r] = rng.choice(pool, size=n_neg, replace=False)
            pos_s = (users[torch.tensor(u)] * items[torch.tensor(i)]).sum(1).numpy()
            neg_s = torch.einsum("nd,nkd->nk", users[torch.tensor(u)], items[torch.as_tensor(neg)]).numpy()
            rows[g] = {**sampled_metrics(pos_s, neg_s, ks), "users": len(np.unique(u)), "cases": len(df)}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"sampled 1+{n_neg}")
    k = max(depth, *ks)
    for g, df in _groups(s.test).items():
        rel = df.groupby("user_id").item_id.apply(list)
        uid = torch.tensor(rel.index.to_numpy())
        ranked = _ranked(users, items, s, uid, k, _among(g, candidates, s))
        m = ranking_metrics(ranked, list(rel.values), ks, ("HR", "Recall", "Precision", "NDCG", "MAP"))
        m.update({f"MRR@{ranked.shape[1]}": ranking_metrics(ranked, list(rel.values), (ranked.shape[1],),
                                                           ("MRR",))[f"MRR@{ranked.shape[1]}"]})
        rows[g] = {**m, "users": len(uid), "cases": len(df)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("full ranking")


def evaluate_users(model, s: Split, group: str = "cold", k: int = 10, candidates: str = "own") -> pd.DataFrame:
    """Per-user metrics of one test group (the units of a per-user paired claim).

    One row per user with test items in ``group`` (index ``user_id``): ``HR@k``, ``NDCG@k``,
    ``Recall@k`` (RecBole's definitions) and ``cold share@k``, the share of the user's top ``k``
    that are cold items. Candidates as in :func:`evaluate`.
    """
    among = _among(group, candidates, s)
    df = s.test[s.test.group == group]
    if df.empty:
        raise ValueError(f"the split has no test interactions in group {group!r}; "
                         f"groups: {sorted(s.test.group.unique())}")
    with torch.no_grad():
        users = model.user_vectors().float()
        items = model.item_vectors().float()
    rel = df.groupby("user_id").item_id.apply(list)
    uid = torch.tensor(rel.index.to_numpy())
    ranked = _ranked(users, items, s, uid, k, among)
    hit, n_rel = hits(ranked, list(rel.values))
    values = per_user(hit, n_rel, k)
    out = pd.DataFrame({f"{m}@{k}": values[m] for m in ("HR", "NDCG", "Recall")}, index=rel.index)
    out[f"cold share@{k}"] = np.isin(ranked, s.cold_items).mean(1)
    return out


def _subset_csr(seen: tuple[torch.Tensor, torch.Tensor], users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    indptr, indices = seen
    counts = indptr[users + 1] - indptr[users]
    new_ptr = torch.zeros(len(users) + 1, dtype=torch.long)
    new_ptr[1:] = torch.cumsum(counts, 0)
    parts = [indices[indptr[u] : indptr[u + 1]] for u in users.tolist()]
    return new_ptr, torch.cat(parts) if parts else indices[:0]


def paired_users(a: list[pd.DataFrame], b: list[pd.DataFrame], metric: str) -> list[np.ndarray]:
    """Paired effect ``a - b`` of ``metric``, seeds x users: one row per run (seed), one value per user.

    ``a`` and ``b`` hold one :func:`evaluate_users` frame per run, in the same order (run ``r``
    of ``a`` pairs with run ``r`` of ``b``: same split, same users, models trained from the same
    seed). Row ``r`` holds run ``r``'s per-user differences in the frames' user order (by
    ``user_id``); rows differ in length when the runs' test users differ (e.g. each seed's
    item-cold split). Pass the rows to ``claim(..., unit="user")`` as they are: a claim about
    a method is judged over the trained models (each row averaged, then over seeds), never over
    users pooled across seeds.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_users needs the same positive number of runs per arm, got {len(a)} and {len(b)}")
    rows = []
    for x, y in zip(a, b):
        if not x.index.equals(y.index):
            raise ValueError("paired_users: the two arms of a run must cover the same users in the same order")
        if x.empty:
            raise ValueError("paired_users: a run has no users; every seed needs at least one test user")
        rows.append((x[metric] - y[metric]).to_numpy(dtype=np.float64))
    return rows
