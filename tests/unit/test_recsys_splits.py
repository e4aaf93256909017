"""Splits leak nothing; evaluation reports every group and labels the sampled protocol."""

import importlib

import numpy as np
import pandas as pd
import pytest
import torch

from nbsupport import recsys
from nbsupport.data.locate import DataNotFound
from nbsupport.recsys import features, models, splits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return recsys.synthetic(n_users=40, n_items=50, per_user=10, seed=1)


def pairs(df):
    return set(zip(df.user_id, df.item_id))


def test_synthetic_has_the_movielens_structure(data):
    assert set(data.item_features) == {"genre", "year", "title"}
    assert set(data.user_features) == {"age", "gender", "occupation"}
    assert data.item_features["genre"].shape == (50, len(data.genres))
    assert all(v.shape[0] == 40 for v in data.user_features.values())
    assert torch.allclose(data.item_features["year"].sum(1), torch.ones(50))  # one bucket each
    assert "synthetic" in repr(data)


def test_feature_groups_from_frames():
    items = pd.DataFrame({"item_id": [0, 1, 2], "title": ["a", "b", "c"], "year": pd.array([1955, None, 1997], dtype="Int64"),
                          "genres": [["Drama"], ["Comedy", "Drama"], []]})
    groups, names = features.item_feature_groups(items, None)
    assert names == ["Comedy", "Drama"] and "title" not in groups
    assert groups["genre"].tolist() == [[0, 1], [1, 1], [0, 0]]
    assert groups["year"].argmax(1).tolist() == [0, len(features.YEAR_EDGES) + 1, len(features.YEAR_EDGES)]
    users = pd.DataFrame({"user_id": [0, 1], "age": [17, 60], "gender": ["F", "M"], "occupation": ["x", "y"]})
    ug = features.user_feature_groups(users)
    assert ug["age"].argmax(1).tolist() == [0, len(features.AGE_EDGES)]


def test_loader_errors():
    with pytest.raises(ValueError, match="unknown dataset"):
        recsys.load("netflix")
    with pytest.raises(DataNotFound):
        recsys.load_movielens(path="/nonexistent/ml-100k", titles=False)


def test_warm_split_is_leave_last_out(data):
    s = recsys.split(data, "warm")
    assert pairs(s.train) | pairs(s.test) == pairs(data.ratings) and not pairs(s.train) & pairs(s.test)
    last = data.ratings.sort_values("timestamp").groupby("user_id").tail(1)
    assert pairs(s.test) == pairs(last) and (s.test.group == "warm").all()
    assert s.known_items().sum() >= 1 and len(s.cold_items) == 0


def test_item_cold_split_leaks_no_cold_item(data):
    s = recsys.split(data, "item-cold", share=0.2, seed=3)
    assert len(s.cold_items) == 10
    assert not set(s.train.item_id) & set(s.cold_items)
    cold = s.test[s.test.group == "cold"]
    assert pairs(cold) == pairs(data.ratings[data.ratings.item_id.isin(s.cold_items)])
    assert not set(s.test[s.test.group == "warm"].item_id) & set(s.cold_items)
    assert pairs(s.train) | pairs(s.test) == pairs(data.ratings)
    assert not s.known_items()[torch.as_tensor(s.cold_items)].any()
    again = recsys.split(data, "item-cold", share=0.2, seed=3)
    assert np.array_equal(again.cold_items, s.cold_items)  # seeded


@pytest.mark.parametrize("first_k", [0, 3])
def test_user_cold_split(data, first_k):
    s = recsys.split(data, "user-cold", share=0.25, first_k=first_k, seed=0)
    theirs = s.train[s.train.user_id.isin(s.cold_users)]
    if first_k == 0:
        assert theirs.empty and not s.known_users()[torch.as_tensor(s.cold_users)].any()
    else:
        counts = theirs.groupby("user_id").size()
        assert (counts == first_k).all() and len(counts) == len(s.cold_users)
        for u, df in data.ratings[data.ratings.user_id.isin(s.cold_users)].groupby("user_id"):
            assert set(df.nsmallest(first_k, "timestamp").item_id) == set(theirs[theirs.user_id == u].item_id)
    assert set(s.test[s.test.group == "cold"].user_id) == set(s.cold_users)
    assert pairs(s.train) | pairs(s.test) == pairs(data.ratings)


def test_split_errors(data):
    with pytest.raises(ValueError, match="unknown split"):
        recsys.split(data, "cold")
    with pytest.raises(ValueError, match="share"):
        recsys.split(data, "item-cold", share=1.5)
    with pytest.raises(ValueError, match="first_k"):
        recsys.split(data, "user-cold", first_k=-1)


class Oracle:
    """Scores 1 for a user's test items, 0 otherwise."""

    def __init__(self, s):
        self.u = torch.zeros(s.n_users, s.n_items)
        self.u[torch.tensor(s.test.user_id.to_numpy()), torch.tensor(s.test.item_id.to_numpy())] = 1.0
        self.n = s.n_items

    def user_vectors(self):
        return self.u

    def item_vectors(self):
        return torch.eye(self.n)


def test_evaluate_groups_and_protocols(data):
    s = recsys.split(data, "item-cold", share=0.2, seed=0)
    full = recsys.evaluate(Oracle(s), s, ks=(5, 20))
    assert list(full.index) == ["warm", "cold", "overall"] and full.index.name == "full ranking"
    assert (full["HR@5"] == 1).all() and full.loc["overall", "MRR@100"] == 1  # other groups' items tie
    assert full.loc["overall", "cases"] == len(s.test)
    sampled = recsys.evaluate(Oracle(s), s, protocol="sampled", n_neg=9, ks=(1,))
    assert sampled.index.name == "sampled 1+9" and (sampled["sampled Hit@1"] == 1).all()
    everything = recsys.evaluate(Oracle(s), s, ks=(5,), candidates="all")
    assert (everything["HR@5"] == 1).all()
    with pytest.raises(ValueError, match="candidates"):
        recsys.evaluate(Oracle(s), s, candidates="warm")
    with pytest.raises(ValueError, match="protocol"):
        recsys.evaluate(Oracle(s), s, protocol="loo")


def test_candidates_rank_each_group_among_its_own_items(data):
    s = recsys.split(data, "item-cold", share=0.2, seed=0)
    model = models.RandomScores(seed=0).fit(s)
    cold_items = set(s.cold_items.tolist())
    for group, candidates, inside in (("cold", "own", True), ("warm", "own", False), ("warm", "cold", None)):
        frame = recsys.evaluate_users(model, s, group, k=5, candidates=candidates)
        users = torch.tensor(frame.index.to_numpy())
        ranked = splits._ranked(*_vectors(model), s, users, 5, splits._among(group, candidates, s))
        seen = s.train.groupby("user_id").item_id.apply(set)
        for u, row in zip(frame.index, ranked):
            assert not set(row.tolist()) & seen.get(u, set())
            if inside is not None:
                assert all((i in cold_items) == inside for i in row.tolist())
        assert frame["cold share@5"].eq(1.0 if inside else 0.0).all() if inside is not None else True
    # per-user metrics average to evaluate()'s
    frame = recsys.evaluate_users(model, s, "cold", k=10)
    table = recsys.evaluate(model, s, ks=(10,))
    assert frame["NDCG@10"].mean() == pytest.approx(table.loc["cold", "NDCG@10"])
    assert frame["HR@10"].mean() == pytest.approx(table.loc["cold", "HR@10"])
    with pytest.raises(ValueError, match="group"):
        recsys.evaluate_users(model, recsys.split(data, "warm"), "cold")


def _vectors(model):
    return model.user_vectors().float(), model.item_vectors().float()


def test_paired_users_gives_one_row_per_run():
    """Seeds x users: run r's per-user differences in row r, never pooled over runs (the unit of
    a claim about a method is the trained model); rows may differ in length."""
    a = [pd.DataFrame({"NDCG@10": [0.5, 0.2]}, index=[1, 3]), pd.DataFrame({"NDCG@10": [0.4, 0.1, 0.3]}, index=[0, 1, 2])]
    b = [pd.DataFrame({"NDCG@10": [0.1, 0.2]}, index=[1, 3]), pd.DataFrame({"NDCG@10": [0.0, 0.3, 0.3]}, index=[0, 1, 2])]
    rows = splits.paired_users(a, b, "NDCG@10")
    assert len(rows) == 2 and [len(r) for r in rows] == [2, 3]
    assert all(isinstance(r, np.ndarray) and r.dtype == np.float64 for r in rows)
    assert rows[0].tolist() == pytest.approx([0.4, 0.0])
    assert rows[1].tolist() == pytest.approx([0.4, -0.2, 0.0])
    assert [r.mean() for r in rows] == pytest.approx([0.2, 0.2 / 3])  # each seed's mean over its own users
    with pytest.raises(ValueError, match="same users"):
        splits.paired_users(a, b[::-1], "NDCG@10")
    with pytest.raises(ValueError, match="runs"):
        splits.paired_users(a, b[:1], "NDCG@10")
    with pytest.raises(ValueError, match="runs"):
        splits.paired_users([], [], "NDCG@10")
    empty = pd.DataFrame({"NDCG@10": []}, index=pd.Index([], dtype=np.int64))
    with pytest.raises(ValueError, match="no users"):
        splits.paired_users([empty], [empty], "NDCG@10")


def test_movielens_1m_absent_says_where_and_falls_back(monkeypatch, tmp_path, capsys):
    from nbsupport.data import movielens

    monkeypatch.setattr(movielens, "CACHE", tmp_path)
    with pytest.raises(DataNotFound, match="ml-1m"):
        movielens.load_movielens1m()
    def fake(variant="100k", **kw):  # 1M from the (empty) cache, 100K as a stand-in
        return movielens.load_movielens1m() if variant == "1m" else "100k"

    monkeypatch.setattr(features, "load_movielens", fake)
    assert recsys.load("movielens-1m", titles=False) == "100k"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "ml-1m" in out and "MovieLens-100K" in out
    fallback = importlib.import_module("nbsupport.record")._RECORDS["data_fallback"]
    assert fallback["asked"] == "movielens-1m" and fallback["used"] == "movielens-100k" and "ml-1m" in fallback["why"]
