"""Models fit a tiny dataset, cold entities take the documented path, the critiquing simulator behaves."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from nbsupport import recsys
from nbsupport.recsys import critique, models

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 250


@pytest.fixture(scope="module")
def data():
    return recsys.synthetic(n_users=30, n_items=40, per_user=8, seed=2)


@pytest.fixture(scope="module")
def cold(data):
    return recsys.split(data, "item-cold", share=0.2, seed=0)


def train_auc(model, s):
    """Share of (training positive, random item) pairs the model orders correctly."""
    with torch.no_grad():
        scores = model.user_vectors() @ model.item_vectors().T
    g = torch.Generator().manual_seed(0)
    u = torch.tensor(s.train.user_id.to_numpy())
    i = torch.tensor(s.train.item_id.to_numpy())
    j = torch.randint(s.n_items, (len(u),), generator=g)
    return float((scores[u, i] > scores[u, j]).float().mean())


def test_bpr_and_info_nce_formulas():
    torch.manual_seed(0)
    u, p, n = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = -torch.log(torch.sigmoid((u * p).sum(1) - (u * n).sum(1))).mean()
    assert torch.allclose(models.bpr_loss(u, p, n), expected, atol=1e-6)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / 0.5
    by_hand = -0.5 * (torch.log_softmax(logits, 1).diag().mean() + torch.log_softmax(logits, 0).diag().mean())
    assert torch.allclose(models.info_nce(a, b, 0.5), by_hand, atol=1e-6)
    assert models.info_nce(a, a, 0.01) < 1e-3


@pytest.mark.parametrize("make", [
    lambda d: models.Hybrid.mf(d, dim=16),
    lambda d: models.Hybrid(d, dim=16),
    lambda d: models.ContrastiveColdStart(d, dim=16),
    lambda d: models.ContrastiveColdStart(d, dim=16, lam=0.0, gated=False),
], ids=["mf", "hybrid", "contrastive", "contrastive-ablated"])
def test_trainable_models_fit_a_tiny_dataset(data, make):
    s = recsys.split(data, "warm")
    model = make(data)
    log = models.fit(model, s, steps=STEPS, batch=128, lr=0.05, progress=False)
    assert log.loss.iloc[-20:].mean() < 0.5 * log.loss.iloc[:5].mean()
    assert train_auc(model, s) > 0.85


def test_cold_items_take_their_feature_path(data, cold):
    hybrid = models.Hybrid(data, dim=8)
    models.fit(hybrid, cold, steps=5, batch=32, progress=False)
    c = torch.as_tensor(cold.cold_items)
    with torch.no_grad():
        assert torch.allclose(hybrid.item_vectors()[c], hybrid.item_feats.parts().sum(1)[c])
    mf = models.Hybrid.mf(data, dim=8)
    init = mf.item_id.weight.detach().clone()
    models.fit(mf, cold, steps=20, batch=32, progress=False)
    diff = (mf.item_vectors().detach()[c] - init[c]).abs().max()
    assert diff == 0, diff  # never a positive nor a negative
    con = models.ContrastiveColdStart(data, dim=8)
    models.fit(con, cold, steps=5, batch=32, progress=False)
    with torch.no_grad():
        assert torch.allclose(con.item_vectors()[c], con.item_fusion()[0][c])
        known = cold.known_items()
        assert torch.equal(con.item_vectors()[known], con.item_id.weight[known])
    gates = con.gate_weights()
    assert sum(gates["item"].values()) == pytest.approx(1.0, abs=1e-5)
    uniform = models.ContrastiveColdStart(data, dim=8, gated=False).gate_weights()
    assert all(w == pytest.approx(1 / 3) for w in uniform["user"].values())


def test_popularity_random_and_content(data, cold):
    pop = models.Popularity().fit(cold)
    counts = np.bincount(cold.train.item_id, minlength=data.n_items)
    order = torch.argsort(pop.item_vectors()[:, 0], descending=True, stable=True).numpy()
    assert np.all(np.diff(counts[order]) <= 0)
    r = models.RandomScores(seed=1).fit(cold)
    assert r.item_vectors().shape == (data.n_items, 1)
    content = models.ContentOnly(data).fit(cold)
    u = int(cold.train.user_id.iloc[0])
    hist = cold.train[cold.train.user_id == u].item_id.to_numpy()
    expected = F.normalize(F.normalize(data.item_features["title"][hist], dim=-1).sum(0), dim=0)
    assert torch.allclose(content.user_vectors()[u], expected, atol=1e-6)


def test_aligner_uses_text_for_cold_items_and_learns(data, cold):
    cf = models.Hybrid.mf(data, dim=16)
    models.fit(cf, cold, steps=100, batch=64, lr=0.05, progress=False)
    al = models.ALLMRecAligner(cf, data.item_features["title"], latent=8, hidden=32)
    log = models.fit(al, cold, steps=200, batch=64, lr=0.01, progress=False)
    assert log.matching.iloc[-10:].mean() < log.matching.iloc[:3].mean()
    with torch.no_grad():
        auto, text, item = al.item_vectors(), al.item_vectors("text"), al.item_vectors("item")
    c = torch.as_tensor(cold.cold_items)
    assert torch.equal(auto[c], text[c])
    assert torch.equal(auto[al.known_items], cf.item_vectors().detach()[al.known_items])  # warm: CF vectors
    assert item.shape == auto.shape and not torch.equal(item, auto)
    with pytest.raises(ValueError, match="path"):
        al.item_vectors("decoded")


def test_fit_evaluate_long_format(data, cold):
    table = models.fit_evaluate({"pop": models.Popularity, "mf": lambda: models.Hybrid.mf(data, dim=8)}, cold,
                                steps=5, batch=32, progress=False)
    assert set(table.model) == {"pop", "mf"} and set(table.group) == {"warm", "cold", "overall"}
    assert np.isfinite(table["HR@10"]).all()


def test_cold_first_random_ranks_cold_items_first_in_random_order(data, cold):
    rand = models.RandomScores(seed=4).fit(cold)
    first = models.ColdFirstRandom(seed=4).fit(cold)
    scores, base = first.item_vectors()[:, 0], rand.item_vectors()[:, 0]
    c = torch.as_tensor(cold.cold_items)
    others = torch.ones(cold.n_items, dtype=torch.bool)
    others[c] = False
    assert scores[c].min() > scores[others].max()
    assert torch.equal(scores[c].argsort(), base[c].argsort())  # same order among cold items
    a = recsys.evaluate_users(first, cold, "cold", candidates="all")
    b = recsys.evaluate_users(rand, cold, "cold", candidates="own")
    assert np.array_equal(a[["HR@10", "NDCG@10"]].to_numpy(), b[["HR@10", "NDCG@10"]].to_numpy())
    assert (a["cold share@10"] == min(1.0, len(c) / 10)).all()  # cold items fill the top


def test_info_nce_uses_at_most_nce_sample_entities(data, cold):
    m = models.ContrastiveColdStart(data, dim=8, nce_sample=4)
    ids = torch.tensor([3, 3, 1, 2, 5, 7, 9])
    picked = m._distinct(ids)
    assert len(picked) == 4 and len(picked.unique()) == 4 and set(picked.tolist()) <= set(ids.tolist())
    assert sorted(m._distinct(torch.tensor([2, 2, 1])).tolist()) == [1, 2]
    with pytest.raises(ValueError, match="nce_sample"):
        models.ContrastiveColdStart(data, dim=8, nce_sample=1)


def test_genre_effects_recover_planted_coefficients():
    g = torch.Generator().manual_seed(0)
    genres = (torch.rand(300, 4, generator=g) < 0.3).float()
    pop = torch.randint(0, 50, (300,), generator=g).float()
    b = torch.randn(4, 6, generator=g)
    items = 0.5 + genres @ b + torch.log1p(pop)[:, None] * torch.randn(1, 6, generator=g)
    assert torch.allclose(critique.genre_effects(items, genres, pop), b, atol=1e-4)
    x = np.column_stack([np.ones(300), genres.numpy(), np.log1p(pop.numpy())])
    noisy = items + 0.1 * torch.randn(300, 6, generator=g)
    ref = np.linalg.lstsq(x, noisy.double().numpy(), rcond=None)[0][1:5]
    assert np.allclose(critique.genre_effects(noisy, genres, pop).numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="one row per item"):
        critique.genre_effects(items, genres[:10], pop)


def test_critique_move_shifts_the_genre_score_by_delta():
    u, b = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([0.5, -1.0, 2.0])
    moved = critique.critique_move(u, b, -1.0, 0.3)
    assert torch.allclose((moved - u) @ b, torch.tensor(-0.3))
    r = torch.tensor([0.0, 0.6, 0.8])
    control = critique.critique_move(u, b, 1.0, 0.3, r)
    assert torch.allclose((control - u).norm(), (moved - u).norm())
    assert torch.equal(critique.critique_move(u, torch.zeros(3), 1.0, 0.3), u)


def test_critique_simulator():
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    genres = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    d = torch.eye(2)  # genre a along x, genre b along y
    users = torch.tensor([[1.0, 0.0]])
    sessions = pd.DataFrame({"user_id": [0], "item_id": [1]})
    out = critique.simulate(users, items, genres, d, sessions, turns=3, step=2.0, genre_names=["a", "b"])
    assert list(out.turn) == [0, 1, 2, 3]
    assert out["rank"].iloc[0] == 3 and bool(out["hit@10"].iloc[0])  # items 0 and 2 outrank the target first
    assert out.critique.iloc[0] == "-a"  # shown item 0 has genre a, the target lacks it
    assert out["rank"].iloc[-1] < out["rank"].iloc[0]
    assert "accept" in set(out.critique) and out["rank"].iloc[-1] == 1
    still = critique.simulate(users, items, genres, d, sessions, turns=2, step=0.0)
    assert still["rank"].nunique() == 1
    control = critique.simulate(users, items, genres, d, sessions, turns=3, step=2.0, genre_names=["a", "b"], control=True, seed=1)
    assert control.critique.iloc[0] == "-a" and list(control.turn) == [0, 1, 2, 3]
    table = critique.per_turn(out)
    assert list(table.index) == [0, 1, 2, 3] and table["median rank"].iloc[0] == 3
    with pytest.raises(ValueError, match="turns"):
        critique.simulate(users, items, genres, d, sessions, turns=-1)
    with pytest.raises(ValueError, match="genre_effects"):
        critique.simulate(users, items, genres, torch.eye(3), sessions)


def test_tune_step_picks_the_lowest_final_log_rank():
    def play(step):
        rank = {0.5: [4, 4], 1.0: [2, 8], 2.0: [1, 20]}[step]
        return pd.DataFrame({"turn": [0, 0, 1, 1], "rank": [9, 9, *rank]})
    best, table = critique.tune_step([2.0, 1.0, 0.5], play)
    assert best == 0.5 or best == 1.0  # log 4 + log 4 == log 2 + log 8: the tie goes to the smaller step
    assert best == 0.5 and table.loc[2.0] == pytest.approx(np.log(20) / 2)
    with pytest.raises(ValueError, match="empty"):
        critique.tune_step([], play)


def test_bpr_sampler_draws_training_pairs_and_fit_is_seeded(data, cold):
    sample = models.bpr_sampler(cold, 64)
    u, i, j = sample(1, torch.Generator().manual_seed(0))
    pairs = set(zip(cold.train.user_id, cold.train.item_id))
    assert u.shape == i.shape == j.shape == (64,) and all((int(a), int(b)) in pairs for a, b in zip(u, i))
    assert set(j.tolist()) <= set(cold.train.item_id)
    assert all(torch.equal(a, b) for a, b in zip(sample(1, torch.Generator().manual_seed(0)), (u, i, j)))

    def run(seed):
        torch.manual_seed(0)
        model = models.ContrastiveColdStart(data, dim=8)
        return models.fit(model, cold, steps=5, batch=32, seed=seed, progress=False), model

    (a, ma), (b, mb) = run(3), run(3)
    assert a.loss.tolist() == b.loss.tolist() and torch.equal(ma.item_vectors(), mb.item_vectors())
    assert a.seed.tolist() == [3] * 5 and run(4)[0].loss.tolist() != a.loss.tolist()
