"""nbsupport.ssm against closed forms and brute-force computations (papers: docs/bibliography.md, SSM)."""

import math

import numpy as np
import pytest
import torch

from nbsupport import ssm


def test_legs_closed_form_and_spectrum():
    N = 12
    A, B = ssm.hippo("legs", N)
    for n in range(N):
        assert B[n] == pytest.approx(math.sqrt(2 * n + 1))
        for k in range(N):
            want = -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1) if n > k else (-(n + 1) if n == k else 0.0)
            assert A[n, k] == pytest.approx(want)
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(A).real), -np.arange(N, 0, -1), rtol=1e-6)


def test_legs_normal_plus_low_rank():
    N = 16
    A_normal, P, B = ssm.hippo_nplr(N)
    A, _ = ssm.hippo("legs", N)
    np.testing.assert_allclose(A_normal - np.outer(P, P), A, atol=1e-12)
    np.testing.assert_allclose(np.diag(A_normal), -0.5, atol=1e-12)
    S = A_normal + 0.5 * np.eye(N)
    np.testing.assert_allclose(S, -S.T, atol=1e-12)
    np.testing.assert_allclose(P, np.sqrt(np.arange(N) + 0.5))


def test_legt_lagt_fout_forms():
    N = 6
    A, B = ssm.hippo("legt", N)
    for n in range(N):
        for k in range(N):
            sign = 1.0 if n >= k else (-1.0) ** (n - k)
            assert A[n, k] == pytest.approx(-0.5 * math.sqrt((2 * n + 1) * (2 * k + 1)) * sign)
    np.testing.assert_allclose(B, 0.5 * np.sqrt(2 * np.arange(N) + 1))
    A, B = ssm.hippo("lagt", N)
    np.testing.assert_allclose(A, 0.5 * np.eye(N) - np.tril(np.ones((N, N))))
    np.testing.assert_allclose(B, 1.0)
    A, B = ssm.hippo("fout", 5)
    b = np.array([1, math.sqrt(2), 0, math.sqrt(2), 0])
    np.testing.assert_allclose(B, 2 * b)
    D = A + 2 * np.outer(b, b)
    np.testing.assert_allclose(D, -D.T, atol=1e-12)  # rotations: the derivative part is skew
    assert D[1, 2] == pytest.approx(2 * math.pi) and D[3, 4] == pytest.approx(4 * math.pi)
    with pytest.raises(ValueError):
        ssm.hippo("legx", 4)


def test_basis_orthonormal():
    x = (np.arange(4000) + 0.5) / 4000
    for measure in ("legs", "legt", "fout"):
        G = ssm.basis(measure, 7, x)
        np.testing.assert_allclose(G @ G.T / len(x), np.eye(7), atol=1e-3)
    age = np.linspace(0, 80, 80001)
    G = ssm.basis("lagt", 5, age)
    np.testing.assert_allclose(G @ G.T * (age[1] - age[0]), np.eye(5), atol=2e-3)


def signal(L=1500):
    t = np.arange(1, L + 1)
    return t, np.sin(t / 150) + 0.5 * np.cos(t / 83)


@pytest.mark.parametrize("measure, window, N, tol", [("legt", 400, 16, 0.01), ("legs", None, 16, 0.05),
                                                     ("lagt", 60, 32, 0.05)])
def test_online_approximation_reconstructs(measure, window, N, tol):
    t, f = signal()
    coef = ssm.online_approximation(f, measure, N, window=window)
    assert coef.shape == (len(f), N)
    s, fhat = ssm.reconstruct(coef[-1], measure, len(f), window=window)
    err = np.sqrt(np.mean((fhat - np.interp(s, t, f)) ** 2))
    assert err < tol


def test_online_fout_coefficients_and_convergence():
    t, f = signal()
    W = 400
    x = (np.arange(W) + 0.5) / W
    exact = ssm.basis("fout", 33, x) @ np.interp(len(f) - W + x * W, t, f) / W  # projection by quadrature
    coef = ssm.online_approximation(f, "fout", 33, window=W)[-1]
    np.testing.assert_allclose(coef, exact, atol=0.02)  # the window-edge estimate converges slowly
    errs = []
    for N in (5, 17, 65):
        s, fhat = ssm.reconstruct(ssm.online_approximation(f, "fout", N, window=W)[-1], "fout", len(f), window=W)
        errs.append(np.sqrt(np.mean((fhat - np.interp(s, t, f)) ** 2)))
    assert errs[0] > errs[1] > errs[2]


def test_s4d_inits():
    N = 64
    n = np.arange(N // 2)
    legs, inv, lin = (ssm.s4d_init(k, N, dtype=torch.complex128).numpy() for k in ("legs", "inv", "lin"))
    np.testing.assert_allclose(legs.real, -0.5, atol=1e-9)
    assert np.all(np.diff(legs.imag) > 0)
    A_normal, _, _ = ssm.hippo_nplr(N)
    eig = np.linalg.eigvals(A_normal)
    np.testing.assert_allclose(np.sort(legs.imag), np.sort(eig.imag[eig.imag > 0]), rtol=1e-6)
    np.testing.assert_allclose(inv.imag, (N / np.pi) * (N / (2 * n + 1) - 1))
    np.testing.assert_allclose(lin, -0.5 + 1j * np.pi * n)
    ratio = np.sort(legs.imag)[1:] / np.sort(inv.imag)[1:]
    assert np.all((ratio > 0.5) & (ratio < 2.5))  # S4D-LegS ~ S4D-Inv (S4D, Fig. 3)
    np.testing.assert_allclose(ssm.s4d_init("real", N).numpy(), -(n + 1.0))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(ssm.s4d_init("random", N, g1), ssm.s4d_init("random", N, g2))
    uni = ssm.s4d_init("uniform", N, torch.Generator().manual_seed(0)).numpy()
    assert np.all(uni.real == -0.5) and 0 <= uni.imag.min() and uni.imag.max() <= lin.imag.max()
    assert np.all(np.diff(uni.imag) >= 0)
    with pytest.raises(ValueError):
        ssm.s4d_init("legs", 7)


def test_init_log_dt_range():
    log_dt = ssm.init_log_dt(20000, 1e-3, 1e-1, torch.Generator().manual_seed(0))
    dt = log_dt.exp()
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 1e-1 * (1 + 1e-5)
    assert abs(float(log_dt.mean()) - math.log(1e-2)) < 0.05  # log-uniform: mean of logs is the midpoint
    with pytest.raises(ValueError):
        ssm.init_log_dt(3, 0.1, 0.01)


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_discretize_diagonal_matches_dense(method):
    A = torch.tensor([-0.5 + 2j, -1.0 + 0.3j, -0.2 - 1j], dtype=torch.complex128)
    B = torch.tensor([1.0 + 0j, 0.5 - 1j, 2.0 + 0j], dtype=torch.complex128)
    Ab, Bb = ssm.discretize(A, B, 0.1, method)
    Ad, Bd = ssm.discretize(torch.diag(A), B, 0.1, method, dense=True)
    torch.testing.assert_close(torch.diag(Ad), Ab)
    torch.testing.assert_close(Bd, Bb)
    if method == "zoh":  # exact solution of x' = A x + B u for u constant over the step
        torch.testing.assert_close(Ab, torch.exp(0.1 * A))


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_kernel_is_impulse_response(method):
    H, n, L = 3, 4, 60
    g = torch.Generator().manual_seed(1)
    A = torch.complex(-torch.rand(H, n, dtype=torch.float64, generator=g) - 0.1,
                      torch.randn(H, n, dtype=torch.float64, generator=g) * 5)
    B = torch.randn(H, n, dtype=torch.complex128, generator=g)
    C = torch.randn(H, n, dtype=torch.complex128, generator=g)
    log_dt = torch.log(torch.tensor([0.01, 0.1, 0.5], dtype=torch.float64))
    K = ssm.ssm_kernel(A, B, C, log_dt, L, method, impl="fast")
    Ab, Bb = ssm.discretize(A, B, log_dt.exp()[:, None], method)
    x = torch.zeros(H, n, dtype=torch.complex128)
    for step in range(L):  # impulse u = (1, 0, 0, ...): y_l = 2 Re sum C x_l
        x = Ab * x + Bb * (1.0 if step == 0 else 0.0)
        torch.testing.assert_close(K[:, step], 2 * (C * x).sum(-1).real)


def test_ptd_conditioning_improves_with_perturbation():
    N = 32
    A, _ = ssm.hippo("legs", N)
    conds = [ssm.ptd_init(N, eps, tries=4, seed=0)["cond"] for eps in (1e-4, 1e-3, 1e-2, 1e-1)]
    assert ssm.eig_condition(A) > conds[0]
    assert all(a > b for a, b in zip(conds, conds[1:])), conds


def test_ptd_diagonal_system_and_transfer_function():
    N = 16
    out = ssm.ptd_init(N, 0.1, tries=2, seed=1)
    A, B = ssm.hippo("legs", N)
    C = np.random.default_rng(0).standard_normal(N)
    w = np.linspace(-20, 20, 7)
    dense = ssm.transfer_function(A + out["E"], B, C, w)
    diag = ssm.transfer_function(out["Lambda"], out["Vinv_B"], C @ out["V"], w)
    np.testing.assert_allclose(diag, dense, rtol=1e-6, atol=1e-8)
    lam, vb = out["pairs"]
    n_real = int((np.abs(out["Lambda"].imag) < 1e-9).sum())
    assert lam.shape == vb.shape == (N // 2 + n_real // 2,) and (lam.imag >= 0).all()
    # one of each pair plus halved real poles reproduce the real system's transfer function
    Cd = (C @ out["V"])
    keep = [int(np.argmin(np.abs(out["Lambda"] - v))) for v in lam]
    half = ssm.transfer_function(lam, vb, Cd[keep], w, conj_pairs=True)
    np.testing.assert_allclose(half, dense, rtol=1e-6, atol=1e-8)
    # conjugate-pair convention: a real system written with one of each pair
    Ad = np.array([-0.5 + 2j, -0.5 - 2j])
    full = ssm.transfer_function(Ad, np.ones(2), np.array([1 + 1j, 1 - 1j]), w)
    half = ssm.transfer_function(Ad[:1], np.ones(1), np.array([1 + 1j]), w, conj_pairs=True)
    np.testing.assert_allclose(full, half)


def test_ptd_s4d_init_is_stable_rescaled_and_prefers_conditioned_draws():
    out = ssm.ptd_s4d_init(16, 0.01, tries=16, seed=0)
    assert (out["A_init"].real < 0).all() and out["stable_draws"] >= 1
    assert np.abs(out["B_init"]).mean() == pytest.approx(1.0)
    many, few = ssm.ptd_init(16, 0.01, tries=16, seed=0), ssm.ptd_init(16, 0.01, tries=1, seed=0)
    assert many["cond"] <= few["cond"]
    with pytest.raises(ValueError, match="no stable draw"):
        ssm.ptd_s4d_init(16, 0.1, tries=1, seed=0)


def test_ptd_absolute_size():
    A, _ = ssm.hippo("legs", 16)
    out = ssm.ptd_init(16, 0.1, tries=2, absolute=True)
    assert np.linalg.norm(out["E"], 2) == pytest.approx(0.1)
    rel = ssm.ptd_init(16, 0.1, tries=2)
    assert np.linalg.norm(rel["E"], 2) == pytest.approx(0.1 * np.linalg.norm(A, 2))
