"""``topk_scores`` paths against the reference and a brute-force ranking, ties and edge cases included."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from nbsupport import kernels
from nbsupport.kernels.topk import chunked, csr, merge, reference, topk_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_force(users, items, k, seen_lists):
    """Python ranking: scores of unseen items, sorted descending, padded with -inf."""
    out = []
    for u, row in enumerate((users @ items.T).tolist()):
        vals = sorted((v for i, v in enumerate(row) if i not in seen_lists[u]), reverse=True)[:k]
        out.append(vals + [float("-inf")] * (k - len(vals)))
    return torch.tensor(out, dtype=torch.float64)


def random_case(n_users=37, n_items=211, d=9, n_seen=400, seed=0, integer=False):
    g = torch.Generator().manual_seed(seed)
    if integer:  # small integers: many exact ties
        users = torch.randint(-2, 3, (n_users, d), generator=g).double()
        items = torch.randint(-2, 3, (n_items, d), generator=g).double()
    else:
        users = torch.randn(n_users, d, generator=g, dtype=torch.float64)
        items = torch.randn(n_items, d, generator=g, dtype=torch.float64)
    u = torch.randint(0, n_users, (n_seen,), generator=g)
    i = torch.randint(0, n_items, (n_seen,), generator=g)
    lists = [set() for _ in range(n_users)]
    for a, b in zip(u.tolist(), i.tolist()):
        lists[a].add(b)
    return users, items, csr(u, i, n_users), lists


def assert_valid(values, indices, users, items, seen_lists, expected_values):
    """Values match the brute force; every index is unseen, distinct and scores its value."""
    assert torch.allclose(values, expected_values, rtol=0, atol=1e-10)
    for u in range(len(users)):
        idx = [i for i in indices[u].tolist() if i >= 0]
        assert len(idx) == len(set(idx)) == int(torch.isfinite(values[u]).sum())
        assert not set(idx) & seen_lists[u]
        if idx:
            got = items[idx] @ users[u]
            assert torch.allclose(got, values[u, : len(idx)], atol=1e-10)


def test_csr_groups_items_per_user():
    indptr, indices = csr([2, 0, 2, 1], [5, 3, 1, 4], 4)
    assert indptr.tolist() == [0, 1, 2, 4, 4]
    assert indices.tolist() == [3, 4, 1, 5]
    with pytest.raises(ValueError, match="user ids"):
        csr([4], [0], 4)
    with pytest.raises(ValueError, match="differ in length"):
        csr([0, 1], [0], 4)


@pytest.mark.parametrize("use_seen", [False, True])
def test_reference_matches_brute_force(use_seen):
    users, items, seen, lists = random_case()
    if not use_seen:
        seen, lists = None, [set() for _ in range(len(users))]
    v, i = reference(users, items, 15, seen)
    assert_valid(v, i, users, items, lists, brute_force(users, items, 15, lists))


@pytest.mark.parametrize("user_chunk,item_chunk", [(1, 1), (5, 17), (8, 64), (1000, 1000), (16, 211)])
@pytest.mark.parametrize("k", [1, 10, 40])
def test_chunked_matches_reference(user_chunk, item_chunk, k):
    users, items, seen, lists = random_case(seed=k)
    rv, ri = reference(users, items, k, seen)
    cv, ci = chunked(users, items, k, seen, user_chunk=user_chunk, item_chunk=item_chunk)
    assert torch.allclose(rv, cv, rtol=0, atol=1e-12)
    assert torch.equal(ri, ci)  # continuous random scores: no ties, same order


@pytest.mark.parametrize("item_chunk", [3, 32, 500])
def test_chunked_with_ties(item_chunk):
    users, items, seen, lists = random_case(n_items=150, d=3, integer=True, seed=5)
    cv, ci = chunked(users, items, 20, seen, user_chunk=7, item_chunk=item_chunk)
    assert_valid(cv, ci, users, items, lists, brute_force(users, items, 20, lists))


def test_every_item_seen_and_k_beyond_catalogue():
    users = torch.randn(4, 3, dtype=torch.float64)
    items = torch.randn(6, 3, dtype=torch.float64)
    u = torch.tensor([0] * 6 + [1, 1])  # user 0 has seen everything, user 1 two items
    i = torch.tensor(list(range(6)) + [0, 5])
    seen = csr(u, i, 4)
    for fn in (reference, lambda *a: chunked(*a, user_chunk=3, item_chunk=4)):
        v, idx = fn(users, items, 8, seen)
        assert torch.isneginf(v[0]).all() and (idx[0] == -1).all()
        assert (idx[1, :4] >= 0).all() and (idx[1, 4:] == -1).all() and not {0, 5} & set(idx[1].tolist())
        assert (idx[2, :6] >= 0).all() and (idx[2, 6:] == -1).all()


def test_merge_keeps_the_best_per_row():
    best_v = torch.tensor([[5.0, 3.0], [float("-inf"), float("-inf")]])
    best_i = torch.tensor([[0, 1], [-1, -1]])
    v, i = merge(best_v, best_i, torch.tensor([0, 1, 0]), torch.tensor([4.0, 1.0, 2.0]), torch.tensor([7, 8, 9]), 2)
    assert v.tolist() == [[5.0, 4.0], [1.0, float("-inf")]]
    assert i.tolist() == [[0, 7], [8, -1]]


def test_input_checks_and_resolver():
    users, items = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match="share d"):
        reference(users, torch.randn(5, 3), 2)
    with pytest.raises(ValueError, match="k must be"):
        chunked(users, items, 0)
    with pytest.raises(ValueError, match="indptr"):
        chunked(users, items, 2, (torch.zeros(3, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
    assert kernels.choose("topk_scores", "cpu") == "fast"
    v, i = topk_scores(users, items, 3, impl="reference")
    assert torch.equal(i, reference(users, items, 3)[1])


def test_float32_matches_float64_reference():
    users, items, seen, lists = random_case(n_users=50, n_items=3000, d=16, seed=3)
    rv, ri = reference(users, items, 25, seen)
    cv, ci = chunked(users.float(), items.float(), 25, seen, user_chunk=16, item_chunk=256)
    assert torch.allclose(cv.double(), rv, atol=1e-4)
    overlap = np.mean([len(set(a) & set(b)) / 25 for a, b in zip(ri.tolist(), ci.tolist())])
    assert overlap > 0.99  # only near-ties may swap


TRITON_SCRIPT = textwrap.dedent("""
    import torch
    from nbsupport.kernels.topk import csr, reference
    from nbsupport.kernels.topk_triton import triton_topk_scores
    g = torch.Generator().manual_seed(0)
    users, items = torch.randn(40, 20, generator=g), torch.randn(150, 20, generator=g)
    seen = csr(torch.randint(0, 40, (300,), generator=g), torch.randint(0, 150, (300,), generator=g), 40)
    u0 = torch.tensor([0] * 150)  # user 0 has seen every item
    seen_all = csr(torch.cat([u0, torch.tensor([1])]), torch.cat([torch.arange(150), torch.tensor([3])]), 40)
    for s in (None, seen, seen_all):
        rv, ri = reference(users.double(), items.double(), 10, s)
        tv, ti = triton_topk_scores(users, items, 10, s, user_chunk=32, item_chunk=64)
        assert torch.allclose(tv.double(), rv, atol=1e-4), (tv, rv)
        assert torch.equal(ti, ri)
    print("ok")
""")


@pytest.mark.skipif(not kernels.triton_available(), reason="needs triton")
def test_triton_matches_reference_under_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", TRITON_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


@pytest.mark.gpu
def test_triton_on_cuda_large():
    from nbsupport.kernels.topk_triton import triton_topk_scores

    g = torch.Generator().manual_seed(0)
    users, items = torch.randn(3000, 64, generator=g), torch.randn(50000, 64, generator=g)
    seen = csr(torch.randint(0, 3000, (300000,), generator=g), torch.randint(0, 50000, (300000,), generator=g), 3000)
    rv, ri = reference(users.double(), items.double(), 100, seen)
    tv, ti = triton_topk_scores(users.cuda(), items.cuda(), 100, seen)
    assert torch.allclose(tv.cpu().double(), rv, atol=1e-3)
    overlap = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(ri.tolist(), ti.cpu().tolist())])
    assert overlap > 0.999


def test_chunked_parallel_workers_match_reference():
    users, items, seen, lists = random_case(n_users=90, seed=11)
    rv, ri = reference(users, items, 12, seen)
    before = torch.get_num_threads()
    cv, ci = chunked(users, items, 12, seen, user_chunk=8, item_chunk=50, workers=3)
    assert torch.get_num_threads() == before  # restored
    assert torch.allclose(rv, cv, rtol=0, atol=1e-12) and torch.equal(ri, ci)
