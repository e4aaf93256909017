"""merge_core paths (chunked CPU fast path, Triton) against the float64 reference.

Tolerances: float32 paths vs the float64 reference, atol 1e-5 + rtol 1e-5 (the disjoint mean
divides by weight sums that can be small). Triton runs under TRITON_INTERPRET=1 on tiny shapes
when there is no CUDA; on CUDA (``gpu`` marker) it runs compiled.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before the Triton module defines its kernels

from nbsupport.kernels import triton_available  # noqa: E402
from nbsupport.kernels.merge_core import (  # noqa: E402
    chunked,
    keep_mask,
    merge_core,
    reference,
    uniform,
)
from nbsupport.merging.selection import magnitude_bounds, stream_seeds  # noqa: E402

CASES = [(None, True), (None, False), ("sum", True), ("sum", False), ("count", True)]


def args_for(d, density=0.3, drop=(0.0, 0.5, 0.9), gamma=(None, 0.05, None), seed=1):
    n = d.shape[0]
    b = [magnitude_bounds(d[i], density, gamma[i % len(gamma)]) for i in range(n)]
    return dict(weights=[1.0, 0.5, -0.3][:n], lo=[x[0] for x in b], hi=[x[1] for x in b],
                drop=list(drop)[:n], scale=[1.0, 2.0, 10.0][:n], seeds=stream_seeds(seed, n, "t"))


def check(got, want):
    assert torch.allclose(got.double(), want, atol=1e-5, rtol=1e-5), (got.double() - want).abs().max()


@pytest.mark.parametrize("consensus,normalize", CASES)
def test_chunked_matches_reference(consensus, normalize):
    torch.manual_seed(0)
    d = torch.randn(3, 10_001)
    a = args_for(d)
    want = reference(d.double(), consensus=consensus, normalize=normalize, **a)
    check(chunked(d, consensus=consensus, normalize=normalize, chunk=777, **a), want)
    check(merge_core(list(d), consensus=consensus, normalize=normalize, impl="fast", **a), want)


def test_edge_cases():
    zeros = torch.zeros(2, 100)
    for fn in (reference, chunked):
        assert torch.equal(fn(zeros, lo=[0.0, 0.0]), torch.zeros(100))
    # a band of magnitudes [lo, hi] is kept, bounds included; infinite hi keeps the top
    d = torch.tensor([1.0, -1, 1, 0.5, 0])
    assert keep_mask(d, 1.0, float("inf"), 0.0, 0).tolist() == [True, True, True, False, False]
    assert keep_mask(torch.arange(1.0, 11.0), 5.0, 8.0, 0.0, 0).nonzero().flatten().tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError):
        reference(zeros, drop=[1.0, 0.0])


def test_uniform_hash():
    u = uniform(123, torch.arange(200_000))
    assert 0 <= float(u.min()) and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.005
    # chunking-independent: the stream depends on (seed, index) only
    assert torch.equal(uniform(123, torch.arange(50, 60)), u[50:60])
    assert not torch.equal(uniform(124, torch.arange(100)), u[:100])


@pytest.mark.skipif(not triton_available(), reason="triton not installed")
@pytest.mark.parametrize("consensus,normalize", CASES)
def test_triton_matches_reference(consensus, normalize):
    from nbsupport.kernels.merge_core_triton import triton_merge_core

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(1)
    d = torch.randn(3, 300)
    a = args_for(d)
    want = reference(d.double(), consensus=consensus, normalize=normalize, offset=5, **a)
    got = triton_merge_core(d.to(dev), consensus=consensus, normalize=normalize, offset=5, block=128, **a)
    check(got.cpu(), want)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_on_cuda_large():
    d = torch.randn(4, 3_000_000, device="cuda")
    a = args_for(d.cpu(), drop=(0.0, 0.5, 0.9, 0.0), gamma=(None,))
    a["weights"], a["scale"] = [1.0, 0.5, -0.3, 2.0], [1.0, 2.0, 10.0, 1.0]
    a["seeds"] = stream_seeds(1, 4, "t")
    want = reference(d.double().cpu(), **a)
    check(merge_core(d, impl="triton", **a).cpu(), want)


def test_hash_matches_its_integer_specification():
    from nbsupport.kernels.merge_core import _lowbias32, _words, lowbias32_int

    idx = torch.randint(0, 2**32, (5000,), dtype=torch.int64)
    idx[:4] = torch.tensor([0, 1, 2**31, 2**32 - 1])
    got = (_lowbias32(_words(idx)).long() & 0xFFFFFFFF).tolist()
    assert got == [lowbias32_int(int(i)) for i in idx]
