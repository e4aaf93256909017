"""Selection of task-vector entries (nbsupport.merging.selection) against brute force and mergekit."""

import pytest
import torch

from nbsupport.kernels.merge_core import keep_mask
from nbsupport.merging.selection import (
    l1_rescale,
    magnitude_bounds,
    select,
    stream_seeds,
    top_share,
    trim,
)


def test_magnitude_bounds_by_brute_force():
    # magnitude ties: all entries equal to the threshold are kept
    d = torch.tensor([1.0, -1, 1, 0.5, 0])
    lo, hi = magnitude_bounds(d, 0.2)
    assert (lo, hi) == (1.0, float("inf"))
    assert keep_mask(d, lo, hi, 0.0, 0).tolist() == [True, True, True, False, False]
    assert magnitude_bounds(d, 1.0) == (0.0, float("inf"))
    # Breadcrumbs band: drop the top 20%, keep the next 40%
    v = torch.arange(1.0, 11.0)
    lo, hi = magnitude_bounds(v, 0.4, gamma=0.2)
    assert keep_mask(v, lo, hi, 0.0, 0).nonzero().flatten().tolist() == [4, 5, 6, 7]
    # TIES trim: the bound is the k-th largest magnitude, k = int(density * n), by a full sort
    x = torch.randn(1001, generator=torch.Generator().manual_seed(3))
    lo, _ = magnitude_bounds(x, 0.3)
    assert lo == float(x.abs().sort(descending=True).values[int(0.3 * 1001) - 1])


def test_select_without_ties_is_the_bounds():
    x = torch.randn(500, generator=torch.Generator().manual_seed(0))
    got, lo, hi = select(x, 0.25)
    assert got is x and (lo, hi) == magnitude_bounds(x, 0.25)
    with pytest.raises(ValueError, match="tie_break"):
        select(torch.ones(10), 0.3, tie_break="random")


def test_l1_rescale_by_brute_force():
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(1))
    lo, hi = magnitude_bounds(x, 0.4)
    keep = keep_mask(x, lo, hi, 0.5, 7)
    want = float(x.abs().sum() / (x.abs() * keep).sum())
    assert l1_rescale(x, lo, hi, 0.5, 7, chunk=999) == pytest.approx(want, rel=1e-6)
    assert l1_rescale(torch.zeros(10), 0.0, float("inf"), 0.0, 0) == 1.0


def test_stream_seeds_per_tensor_and_model():
    a = stream_seeds(5, 3, "layer.weight")
    assert a == stream_seeds(5, 3, "layer.weight") and len(set(a)) == 3
    assert a[:2] == stream_seeds(5, 2, "layer.weight")  # independent of how many models follow
    assert a != stream_seeds(5, 3, "layer.bias") and a != stream_seeds(6, 3, "layer.weight")
    assert all(0 <= s < 2**32 for s in a)


def test_sparsification_matches_mergekit():
    sp = pytest.importorskip("mergekit.sparsify")
    d = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sp.magnitude(d, 0.3), d * keep_mask(d, *magnitude_bounds(d, 0.3), 0.0, 0))
    assert torch.equal(sp.magnitude_outliers(d, 0.3, gamma=0.05), d * keep_mask(d, *magnitude_bounds(d, 0.3, 0.05), 0.0, 0))
    # many magnitude ties (as in real low-precision checkpoints): select() reproduces mergekit's picks
    t = torch.randint(-20, 21, (200_000,)).float()
    for gamma in (None, 0.01):
        got, lo, hi = select(t, 0.3, gamma)
        want = sp.magnitude(t, 0.3) if gamma is None else sp.magnitude_outliers(t, 0.3, gamma=gamma)
        assert torch.equal(got * keep_mask(got, lo, hi, 0.0, 0), want)
        idx, lo, hi = select(t, 0.3, gamma, tie_break="index")
        assert int(keep_mask(idx, lo, hi, 0.0, 0)[idx != 0].sum()) == int((want != 0).sum())


def test_trim_and_top_share_by_brute_force():
    g = torch.Generator().manual_seed(2)
    tv = {"a": torch.randn(40, generator=g), "b": 10 * torch.randn(60, generator=g)}
    per_tensor = trim(tv, 0.25)
    assert [int((v != 0).sum()) for v in per_tensor.values()] == [10, 15]
    whole = trim(tv, 0.25, scope="model")
    flat = torch.cat([tv["a"], tv["b"]])
    top = set(flat.abs().argsort(descending=True)[:25].tolist())
    got = set(torch.cat([whole["a"], whole["b"]]).nonzero().flatten().tolist())
    assert got == top
    share = float(torch.cat([whole["a"], whole["b"]]).square().sum() / flat.square().sum())
    assert top_share(tv, 0.25, "model") == pytest.approx(share)
    assert top_share({"c": torch.ones(10)}, 0.3) == pytest.approx(1.0)  # ties: all kept
    assert top_share(tv, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="scope"):
        trim(tv, 0.5, scope="layer")
