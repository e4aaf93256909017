"""Every path of the S4D Vandermonde kernel against the float64 reference.

Tolerances: the blocked path in float64 agrees to 1e-10 relative; float32 paths agree with the
float64 reference (same inputs, upcast) to 1e-5 plus the float32 phase rounding
``4 eps |Im(dtA) l|`` (every float32 path shares it). Triton runs under TRITON_INTERPRET=1 on
tiny shapes here, and compiled on CUDA under the ``gpu`` marker.
"""

import os

import pytest
import torch

from nbsupport import kernels, ssm
from nbsupport.kernels.vandermonde import blocked, reference

EPS32 = torch.finfo(torch.float32).eps


def case(H, N, seed=0, re_scale=0.1, im_scale=3.0, dtype=torch.complex128):
    g = torch.Generator().manual_seed(seed)
    re = -torch.rand(H, N, generator=g, dtype=torch.float64) * re_scale
    im = torch.randn(H, N, generator=g, dtype=torch.float64) * im_scale
    C = torch.complex(torch.randn(H, N, generator=g, dtype=torch.float64),
                      torch.randn(H, N, generator=g, dtype=torch.float64))
    return torch.complex(re, im).to(dtype), C.to(dtype)


def brute_force(dtA, C, L):
    """Loop form of K[h, l] = 2 Re sum_n C exp(dtA l), in Python complex arithmetic."""
    import cmath

    H, N = dtA.shape
    return torch.tensor([[2 * sum(C[h, n].item() * cmath.exp(dtA[h, n].item() * l) for n in range(N)).real
                          for l in range(L)] for h in range(H)], dtype=torch.float64)


def tol32(dtA, C, L):
    return (1e-5 + 4 * EPS32 * float(dtA.detach().imag.abs().max()) * L) * 2 * float(C.detach().abs().sum(1).max())


def test_reference_matches_definition():
    dtA, C = case(2, 3, seed=1)
    torch.testing.assert_close(reference(dtA, C, 9), brute_force(dtA, C, 9), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("L, block", [(1, None), (7, None), (100, None), (1000, None), (257, 16), (97, 1), (50, 64)])
def test_blocked_float64_matches_reference(L, block):
    dtA, C = case(3, 6, seed=L)
    torch.testing.assert_close(blocked(dtA, C, L, block=block), reference(dtA, C, L), rtol=1e-10, atol=1e-10)


def test_blocked_large_arguments():
    """Large |dtA l|: strong decay underflows to 0 without NaN; large phases stay accurate in float64."""
    dtA, C = case(2, 5, seed=3, re_scale=50.0, im_scale=300.0)
    L = 2049  # not a multiple of the block (46)
    got, want = blocked(dtA, C, L), reference(dtA, C, L)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    dtA, C = case(2, 5, seed=4, re_scale=1e-4, im_scale=100.0)
    torch.testing.assert_close(blocked(dtA, C, L), reference(dtA, C, L), rtol=1e-8, atol=1e-8)


def test_blocked_float32_and_gradients():
    dtA, C = case(4, 8, seed=5)
    L = 333
    a32, c32 = dtA.to(torch.complex64).requires_grad_(), C.to(torch.complex64).requires_grad_()
    a64, c64 = a32.detach().to(torch.complex128).requires_grad_(), c32.detach().to(torch.complex128).requires_grad_()
    k32, k64 = blocked(a32, c32, L), reference(a64, c64, L)
    assert (k32.double() - k64).abs().max() <= tol32(a64, c64, L)
    w = torch.randn(4, L, dtype=torch.float64)
    g32 = torch.autograd.grad((k32 * w.float()).sum(), [a32, c32])
    g64 = torch.autograd.grad((k64 * w).sum(), [a64, c64])
    for a, b in zip(g32, g64):
        assert (a.to(torch.complex128) - b).abs().max() <= 1e-4 * b.abs().max()


def test_resolver_and_public_entry():
    dtA, C = case(2, 4, seed=6)
    assert "fast" in kernels.available("s4d_kernel")
    assert kernels.choose("s4d_kernel", "cpu") in ("fast", "triton") or os.environ.get("NBSUPPORT_IMPL")
    for impl in ("reference", "fast"):
        torch.testing.assert_close(ssm.s4d_kernel(dtA, C, 65, impl=impl), reference(dtA, C, 65))
    with pytest.raises(TypeError):
        ssm.s4d_kernel(dtA.real, C, 5, impl="fast")
    with pytest.raises(ValueError):
        ssm.s4d_kernel(dtA, C[:, :2], 5, impl="reference")


@pytest.fixture(scope="module")
def interp(interpreted):
    return interpreted("nbsupport.kernels.vandermonde_triton")


@pytest.mark.parametrize("H, N, L, re_scale, im_scale", [(2, 5, 37, 0.1, 2.0), (1, 40, 130, 0.01, 1.0),
                                                         (2, 3, 300, 30.0, 50.0)])
def test_triton_interpreted_forward_backward(interp, H, N, L, re_scale, im_scale):
    dtA, C = case(H, N, seed=H + N + L, re_scale=re_scale, im_scale=im_scale)
    a32, c32 = dtA.to(torch.complex64).requires_grad_(), C.to(torch.complex64).requires_grad_()
    a64, c64 = a32.detach().to(torch.complex128).requires_grad_(), c32.detach().to(torch.complex128).requires_grad_()
    k, want = interp.triton_s4d_kernel(a32, c32, L), reference(a64, c64, L)
    assert torch.isfinite(k).all()
    assert (k.double() - want).abs().max() <= tol32(a64, c64, L)
    w = torch.randn(H, L, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = torch.autograd.grad((k * w.float()).sum(), [a32, c32])
    ref = torch.autograd.grad((want * w).sum(), [a64, c64])
    for a, b in zip(got, ref):
        assert (a.to(torch.complex128) - b).abs().max() <= 1e-4 * b.abs().max() + 1e-6
    again = interp.triton_s4d_kernel(a32.detach(), c32.detach(), L)
    assert torch.equal(k.detach(), again)


@pytest.mark.gpu
def test_triton_cuda_matches_reference():
    from nbsupport.kernels.vandermonde_triton import triton_s4d_kernel

    dtA, C = case(64, 32, seed=9, re_scale=0.01, im_scale=5.0)
    L = 4099
    a, c = dtA.to(torch.complex64).cuda().requires_grad_(), C.to(torch.complex64).cuda().requires_grad_()
    k = triton_s4d_kernel(a, c, L)
    want = reference(dtA.cuda(), C.cuda(), L)
    assert (k.double() - want).abs().max() <= tol32(dtA, C, L)
    k.sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(c.grad).all()


def test_resolver_prefers_the_blocked_path_on_cuda(monkeypatch):
    """On CUDA the S4D kernel's automatic choice is the blocked path (measured faster than
    Triton on an H200); an explicit impl still picks Triton."""
    monkeypatch.delenv("NBSUPPORT_IMPL", raising=False)
    monkeypatch.setattr(kernels, "triton_available", lambda: True)
    assert kernels.choose("s4d_kernel", "cuda") == "fast"
    assert kernels.choose("cross_entropy", "cuda") == "triton"
