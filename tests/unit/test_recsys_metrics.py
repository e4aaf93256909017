"""Ranking metrics against brute-force definitions and against RecBole's own code."""

import ast
import importlib.util
import math
import types
from pathlib import Path

import numpy as np
import pytest

from nbsupport.recsys.metrics import NAMES, hits, per_user, ranking_metrics, sampled_metrics


def brute(ranked, relevant, k):
    """Each metric for one user from its textbook definition (RecBole's conventions)."""
    top = [i for i in ranked[:k]]
    rel = set(relevant)
    h = [1 if (i in rel and i >= 0) else 0 for i in top]
    n_hit = sum(h)
    dcg = sum(x / math.log2(j + 2) for j, x in enumerate(h))
    idcg = sum(1 / math.log2(j + 2) for j in range(min(len(rel), k)))
    first = next((j + 1 for j, x in enumerate(h) if x), None)
    ap = sum(h[j] * sum(h[: j + 1]) / (j + 1) for j in range(k)) / min(len(rel), k)
    return {"HR": float(n_hit > 0), "Recall": n_hit / len(rel), "Precision": n_hit / k, "NDCG": dcg / idcg,
            "MRR": 1 / first if first else 0.0, "MAP": ap}


CASES = [
    ([3, 1, 4, 9, 2], [1, 2]),
    ([3, 1, 4, 9, 2], [7]),
    ([5, 6, 7, -1, -1], [5, 6, 7, 8, 9, 10]),  # padded list, more relevant than K
    ([0, 1, 2, 3, 4], [0]),
    ([8, 0, 8 + 1, 2, 6], [6, 2, 9, 0]),
]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_metrics_match_brute_force(k):
    ranked = np.array([c[0] for c in CASES])
    relevant = [c[1] for c in CASES]
    got = ranking_metrics(ranked, relevant, ks=(k,))
    for name in NAMES:
        expected = np.mean([brute(r, rel, k)[name] for r, rel in CASES])
        assert got[f"{name}@{k}"] == pytest.approx(expected, abs=1e-12), name


def test_random_rankings_match_brute_force():
    rng = np.random.default_rng(0)
    ranked = np.stack([rng.permutation(30)[:10] for _ in range(50)])
    relevant = [rng.choice(30, size=rng.integers(1, 8), replace=False) for _ in range(50)]
    got = ranking_metrics(ranked, relevant, ks=(5, 10))
    for k in (5, 10):
        for name in NAMES:
            expected = np.mean([brute(list(r), list(rel), k)[name] for r, rel in zip(ranked, relevant)])
            assert got[f"{name}@{k}"] == pytest.approx(expected, abs=1e-12)


def test_users_without_relevant_items_are_dropped_and_errors():
    got = ranking_metrics(np.array([[1, 2], [1, 2]]), [[1], []], ks=(2,))
    assert got["HR@2"] == 1.0 and got["Recall@2"] == 1.0
    with pytest.raises(ValueError, match="rows"):
        hits(np.array([[1, 2]]), [[1], [2]])
    with pytest.raises(ValueError, match="k="):
        ranking_metrics(np.array([[1, 2]]), [[1]], ks=(3,))
    with pytest.raises(ValueError, match="unknown metric"):
        ranking_metrics(np.array([[1, 2]]), [[1]], ks=(1,), names=("AUC",))


def test_sampled_metrics_count_ties_against_the_model():
    pos = np.array([5.0, 1.0, 3.0])
    neg = np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 0.0]])  # ranks 1, 3, 2 (tie counts against)
    got = sampled_metrics(pos, neg, ks=(1, 2))
    assert got["sampled Hit@1"] == pytest.approx(1 / 3)
    assert got["sampled Hit@2"] == pytest.approx(2 / 3)
    assert got["sampled NDCG@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)


def _recbole_metric_info():
    """RecBole's ``metric_info`` functions, compiled from the installed source (numpy 2 shim for np.float)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None:
        pytest.skip("recbole is not installed")
    source = Path(spec.submodule_search_locations[0], "evaluator", "metrics.py").read_text()
    shim = types.ModuleType("np_shim")
    shim.__dict__.update(np.__dict__)
    shim.float = float
    funcs = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name in ("Hit", "MRR", "MAP", "Recall", "NDCG", "Precision"):
            fn = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "metric_info")
            namespace = {"np": shim}
            exec(compile(ast.Module([fn], type_ignores=[]), "recbole_metrics", "exec"), namespace)
            funcs[node.name] = namespace["metric_info"]
    return funcs


def test_equal_to_recbole_definitions():
    rb = _recbole_metric_info()
    rng = np.random.default_rng(1)
    ranked = np.stack([rng.permutation(40)[:10] for _ in range(30)])
    relevant = [rng.choice(40, size=rng.integers(1, 15), replace=False) for _ in range(30)]
    hit, n_rel = hits(ranked, relevant)
    ours = {k: per_user(hit, n_rel, k) for k in (1, 5, 10)}
    theirs = {
        "HR": rb["Hit"](None, hit), "MRR": rb["MRR"](None, hit), "MAP": rb["MAP"](None, hit, n_rel),
        "Recall": rb["Recall"](None, hit, n_rel), "NDCG": rb["NDCG"](None, hit, n_rel),
        "Precision": rb["Precision"](None, hit),
    }
    for name, table in theirs.items():
        for k in (1, 5, 10):
            assert np.allclose(ours[k][name], table[:, k - 1], atol=1e-12), (name, k)
