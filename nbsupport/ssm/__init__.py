"""State space model initialization: HiPPO, S4D inits, discretization, the S4D kernel, PTD.

Papers (equations in docs/bibliography.md): Gu et al. 2020 "HiPPO" and 2022 "How to Train Your HiPPO"
(projection operators, the LegS/LegT/LagT/FouT matrices); Gu et al. 2022 "On the
Parameterization and Initialization of Diagonal State Space Models" (S4D inits, step size,
ZOH/bilinear, the Vandermonde kernel); Yu, Mahoney & Erichson 2023 "Robustifying
State-space Models for Long Sequences via Approximate Diagonalization" (PTD).

Conventions. ``hippo(measure, N)`` returns real float64 (A, B) for the continuous dynamics
``c'(t) = A c(t) + B f(t)`` with a unit timescale: LegS is time-varying (``c' = (A c + B f)/t``),
LegT (with the factor 1/2 of the s4 repository's ``transition("legt")``) remembers a window of
length 2, LagT weighs the past by ``exp(-age)``, FouT remembers a window of length 1. Diagonal SSMs keep one
eigenvalue of each conjugate pair: ``s4d_init(kind, N)`` returns N//2 complex values, and every
kernel is ``K[l] = 2 Re sum_n C_n Bbar_n Abar_n^l``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.polynomial import laguerre, legendre
from scipy.linalg import solve_triangular

from nbsupport.kernels import resolve

MEASURES = ("legs", "legt", "lagt", "fout")
S4D_INITS = ("legs", "inv", "lin", "real", "random")

__all__ = [
    "MEASURES", "S4D_INITS", "basis", "discretize", "hippo", "hippo_nplr", "init_log_dt",
    "online_approximation", "ptd_init", "reconstruct", "s4d_init", "s4d_kernel", "ssm_kernel", "transfer_function",
    "eig_condition",
]


# --------------------------------------------------------------------------- HiPPO matrices

def hippo(measure: str, N: int) -> tuple[np.ndarray, np.ndarray]:
    """HiPPO transition (A (N, N), B (N,)) for ``measure`` in legs, legt, lagt, fout (float64).

    LegS: A_nk = -sqrt(2n+1)sqrt(2k+1) (n > k), -(n+1) (n = k), 0 (n < k); B_n = sqrt(2n+1).
    LegT: A_nk = -1/2 sqrt(2n+1)sqrt(2k+1) (1 if n >= k else (-1)^(n-k)); B_n = 1/2 sqrt(2n+1).
    LagT: A = I/2 - tril(1); B = 1.  FouT (window 1, basis 1, sqrt2 cos 2pi k x, sqrt2 sin 2pi k x,
    How to Train Your HiPPO, §3): ``c' = D c + b (f(t) - f(t-1))`` with D the derivative
    (rotation) blocks and b the basis at the window's edge; the value leaving the window is
    estimated by the Fourier sum at the jump, which converges to (f(t) + f(t-1))/2, so
    ``f(t-1) ~ 2 b^T c - f(t)``, giving ``A = D - 2 b b^T``, ``B = 2 b``: twice the s4 repository's ``transition("fout")``
    (frequencies pi k, a window of length 2), i.e. the same system on a window of length 1,
    a convention this project chose so that every measure has a unit timescale. The estimate is
    rough and the rotations are only marginally stable, so its errors persist: FouT
    reconstructs smooth signals coarsely (tests check the coefficients to 0.02 at N = 33)."""
    n = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * n + 1)
    if measure == "legs":
        A = -np.tril(np.outer(r, r), -1) - np.diag(n + 1)
        return A, r.copy()
    if measure == "legt":
        i, k = np.meshgrid(n, n, indexing="ij")
        sign = np.where(i >= k, 1.0, (-1.0) ** np.abs(i - k))
        return -0.5 * np.outer(r, r) * sign, 0.5 * r
    if measure == "lagt":
        return 0.5 * np.eye(N) - np.tril(np.ones((N, N))), np.ones(N)
    if measure == "fout":
        B = np.zeros(N)
        B[0] = 1.0
        B[1::2] = math.sqrt(2)  # cos terms at indices 1, 3, 5, ...
        D = np.zeros((N, N))
        for k in range(1, (N + 1) // 2 + 1):
            c, s = 2 * k - 1, 2 * k
            if s < N:  # d/dt c_cos = 2 pi k c_sin, d/dt c_sin = -2 pi k c_cos
                D[c, s] = 2 * math.pi * k
                D[s, c] = -2 * math.pi * k
        return D - 2 * np.outer(B, B), 2 * B
    raise ValueError(f"unknown measure {measure!r}; use one of {MEASURES}")


def hippo_nplr(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal-plus-low-rank form of LegS: ``A = A_normal - P P^T`` with ``P_n = sqrt(n + 1/2)``.

    Returns (A_normal, P, B); ``A_normal = -I/2 + S`` with S skew-symmetric (S4, §3.3)."""
    A, B = hippo("legs", N)
    P = np.sqrt(np.arange(N) + 0.5)
    return A + np.outer(P, P), P, B


def basis(measure: str, N: int, x: np.ndarray) -> np.ndarray:
    """Basis functions (N, len(x)) in the measure's own coordinate ``x``.

    legs/legt/fout: x in [0, 1] runs from the start of the remembered window to now;
    lagt: x >= 0 is the age (time before now). ``f(window(x)) ~ sum_n c_n basis_n(x)``."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((N, x.size))
    if measure in ("legs", "legt"):
        for k in range(N):
            out[k] = math.sqrt(2 * k + 1) * legendre.legval(2 * x - 1, np.eye(N)[k])
        return out
    if measure == "lagt":
        for k in range(N):
            out[k] = laguerre.lagval(x, np.eye(N)[k]) * np.exp(-x / 2)
        return out
    if measure == "fout":
        out[0] = 1.0
        for i in range(1, N):
            k = (i + 1) // 2
            out[i] = math.sqrt(2) * (np.cos(2 * math.pi * k * x) if i % 2 else np.sin(2 * math.pi * k * x))
        return out
    raise ValueError(f"unknown measure {measure!r}; use one of {MEASURES}")


def _native_window(measure: str) -> float:
    return {"legt": 2.0, "fout": 1.0, "lagt": 1.0}[measure]


def online_approximation(f: np.ndarray | torch.Tensor, measure: str, N: int, window: float | None = None) -> np.ndarray:
    """Project a signal online, one sample at a time; return the coefficients (L, N) after each step.

    ``f[k-1]`` is the signal at time ``k = 1..L`` (unit steps). LegS remembers all of [0, k]
    (``c' = (A c + B f)/t``); LegT and FouT remember the last ``window`` steps; LagT weighs the
    past by ``exp(-age/window)``. Each step is the bilinear (generalized bilinear, alpha = 1/2)
    update ``(I - hA/2) c_k = (I + hA/2) c_{k-1} + h B f_k`` (HiPPO, Appendix B.3)."""
    f = np.asarray(f.detach().cpu() if isinstance(f, torch.Tensor) else f, dtype=np.float64).reshape(-1)
    A, B = hippo(measure, N)
    eye = np.eye(N)
    out = np.zeros((f.size, N))
    c = np.zeros(N)
    if measure == "legs":  # A is lower triangular: one triangular solve per step
        for k in range(1, f.size + 1):
            h = 1.0 / k
            c = solve_triangular(eye - h / 2 * A, c + h / 2 * (A @ c) + h * B * f[k - 1], lower=True)
            out[k - 1] = c
        return out
    if window is None:
        raise ValueError(f"measure {measure!r} needs window= (the memory length in steps)")
    h = _native_window(measure) / window
    inv = np.linalg.inv(eye - h / 2 * A)
    Abar, Bbar = inv @ (eye + h / 2 * A), inv @ (h * B)
    for k in range(f.size):
        c = Abar @ c + Bbar * f[k]
        out[k] = c
    return out


def reconstruct(coef: np.ndarray, measure: str, t: int, window: float | None = None,
                points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild the remembered signal from the coefficients ``coef`` (N,) held at time ``t``.

    Returns (times s, estimate of f(s)): over [0, t] for LegS, [t - window, t] for LegT/FouT,
    [t - 6 window, t] for LagT (older values are weighted away)."""
    N = len(coef)
    if measure == "legs":
        s = np.linspace(0, t, points)
        x = s / t
    elif measure in ("legt", "fout"):
        s = np.linspace(t - window, t, points)
        x = (s - (t - window)) / window
    elif measure == "lagt":
        s = np.linspace(t - 6 * window, t, points)
        x = (t - s) / window
    else:
        raise ValueError(f"unknown measure {measure!r}; use one of {MEASURES}")
    return s, coef @ basis(measure, N, x)


# --------------------------------------------------------------------------- S4D initializations

def s4d_init(kind: str, N: int, generator: torch.Generator | None = None,
             dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """Diagonal A for S4D (Gu et al. 2022, §4): N//2 complex values, one of each conjugate pair.

    legs: eigenvalues of the LegS normal part (real part exactly -1/2); lin: -1/2 + i pi n;
    inv: -1/2 + i (N/pi)(N/(2n+1) - 1); real: -(n+1); random: -1/2 + i exp(z), z ~ N(0, 1)
    (log-normal imaginary parts, as ``init="rand"`` in the s4 repository's ``dplr``)."""
    if N % 2:
        raise ValueError(f"s4d_init: N must be even (conjugate pairs), got {N}")
    n = torch.arange(N // 2, dtype=torch.float64)
    half = torch.full_like(n, -0.5)
    if kind == "legs":
        A_normal, _, _ = hippo_nplr(N)
        skew = A_normal + 0.5 * np.eye(N)
        mu = np.linalg.eigvalsh(-1j * skew)  # skew = i * (Hermitian -i skew): eigenvalues i mu
        imag = torch.from_numpy(np.sort(mu[mu > 0]))
        out = torch.complex(half, imag)
    elif kind == "lin":
        out = torch.complex(half, math.pi * n)
    elif kind == "inv":
        out = torch.complex(half, (N / math.pi) * (N / (2 * n + 1) - 1))
    elif kind == "real":
        out = torch.complex(-(n + 1), torch.zeros_like(n))
    elif kind == "random":
        z = torch.randn(N // 2, generator=generator, dtype=torch.float64)
        out = torch.complex(half, torch.sort(torch.exp(z)).values)
    else:
        raise ValueError(f"unknown S4D init {kind!r}; use one of {S4D_INITS}")
    return out.to(dtype)


def init_log_dt(H: int, dt_min: float = 1e-3, dt_max: float = 1e-1,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """log step sizes (H,), log dt ~ U[log dt_min, log dt_max] (S4D §4.2)."""
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
    u = torch.rand(H, generator=generator, dtype=torch.float64)
    return (math.log(dt_min) + u * (math.log(dt_max) - math.log(dt_min))).float()


def discretize(A: Any, B: Any, dt: Any, method: str = "zoh", dense: bool = False) -> tuple[Any, Any]:
    """Discretize ``x' = A x + B u`` with step ``dt``; returns (Abar, Bbar).

    Diagonal A (default; tensors broadcast): ZOH ``Abar = exp(dt A)``, ``Bbar = (Abar - 1)/A B``;
    bilinear ``Abar = (1 + dt A/2)/(1 - dt A/2)``, ``Bbar = dt B/(1 - dt A/2)``. With
    ``dense=True`` A is an (N, N) matrix and the same formulas use the matrix exponential/inverse."""
    if dense:
        A, B = torch.as_tensor(A), torch.as_tensor(B)
        eye = torch.eye(A.shape[-1], dtype=A.dtype)
        if method == "zoh":
            Abar = torch.linalg.matrix_exp(dt * A)
            return Abar, torch.linalg.solve(A, (Abar - eye) @ B)
        if method == "bilinear":
            left = eye - dt / 2 * A
            return torch.linalg.solve(left, eye + dt / 2 * A), torch.linalg.solve(left, dt * B)
        raise ValueError(f"unknown method {method!r}; use 'zoh' or 'bilinear'")
    dtA = dt * A
    if method == "zoh":
        Abar = torch.exp(dtA)
        return Abar, (Abar - 1) / A * B
    if method == "bilinear":
        return (1 + dtA / 2) / (1 - dtA / 2), dt * B / (1 - dtA / 2)
    raise ValueError(f"unknown method {method!r}; use 'zoh' or 'bilinear'")


# --------------------------------------------------------------------------- the S4D kernel

def s4d_kernel(dtA: torch.Tensor, C: torch.Tensor, L: int, impl: str | None = None) -> torch.Tensor:
    """Real (H, L) Vandermonde product ``K[h, l] = 2 Re sum_n C[h, n] exp(dtA[h, n] l)``.

    ``dtA`` and ``C`` are complex (H, N), one of each conjugate pair; the caller folds the
    discretization factor into C (see :func:`ssm_kernel`). Paths: ``reference``, ``fast``
    (blocked real matmul, CPU default), ``triton`` (:mod:`nbsupport.kernels.vandermonde`)."""
    return resolve("s4d_kernel", dtA.device, impl)(dtA, C, L)


def ssm_kernel(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, log_dt: torch.Tensor, L: int,
               method: str = "zoh", impl: str | None = None) -> torch.Tensor:
    """Convolution kernel (H, L) of the diagonal SSM (A, B, C) (each (H, N) or broadcastable)
    discretized with step ``exp(log_dt)`` (H,) by ``method``: ``K[l] = 2 Re sum C Bbar Abar^l``.

    For bilinear the pole is passed to :func:`s4d_kernel` as ``log(Abar)``, so ``exp(l log Abar) = Abar^l``."""
    dt = torch.exp(log_dt)[:, None]
    Abar, Bbar = discretize(A, B, dt, method)
    log_pole = dt * A if method == "zoh" else torch.log(Abar)
    return s4d_kernel(log_pole, C * Bbar, L, impl)


# --------------------------------------------------------------------------- PTD and transfer functions

def eig_condition(M: np.ndarray) -> float:
    """2-norm condition number of the eigenvector matrix of M (columns normalized)."""
    _, V = np.linalg.eig(M)
    return float(np.linalg.cond(V / np.linalg.norm(V, axis=0, keepdims=True)))


def ptd_init(N: int, eps: float = 0.1, measure: str = "legs", tries: int = 8, seed: int = 0) -> dict[str, Any]:
    """Perturb-then-diagonalize (Yu et al. 2023, §3): diagonalize ``A + E``, ``||E|| = eps ||A||``.

    The paper picks E by optimizing the eigenvector conditioning plus ``||E||``; here E is the
    best of ``tries`` random Gaussian directions by that conditioning (a cheap stand-in).
    Returns Lambda (N,), V, Vinv_B = V^-1 B (the diagonal system), E, cond (kappa(V)),
    and ``pairs``: the N//2 eigenvalues with the largest imaginary parts (for the S4D layer)
    with their V^-1 B entries."""
    A, B = hippo(measure, N)
    rng = np.random.default_rng(seed)
    norm = np.linalg.norm(A, 2)
    best = None
    for _ in range(max(1, tries)):
        G = rng.standard_normal((N, N))
        E = eps * norm * G / np.linalg.norm(G, 2)
        cond = eig_condition(A + E)
        if best is None or cond < best[1]:
            best = (E, cond)
    E, cond = best
    lam, V = np.linalg.eig(A + E)
    VinvB = np.linalg.solve(V, B.astype(complex))
    keep = np.argsort(-lam.imag)[: N // 2]
    return {"Lambda": lam, "V": V, "Vinv_B": VinvB, "E": E, "cond": cond,
            "pairs": (lam[keep], VinvB[keep])}


def transfer_function(A: np.ndarray, B: np.ndarray, C: np.ndarray, omega: np.ndarray,
                      conj_pairs: bool = False) -> np.ndarray:
    """``G(i w) = C (i w I - A)^-1 B`` on the frequencies ``omega``.

    A (N, N) dense, or (N,) diagonal; with ``conj_pairs`` the diagonal system holds one of each
    conjugate pair and the conjugates are added (the S4D convention)."""
    A, B, C = (np.asarray(v, dtype=complex) for v in (A, B, C))
    s = 1j * np.asarray(omega, dtype=np.float64)
    if A.ndim == 1:
        G = (C * B)[None, :] / (s[:, None] - A[None, :])
        out = G.sum(1)
        if conj_pairs:
            out = out + ((C * B).conj()[None, :] / (s[:, None] - A.conj()[None, :])).sum(1)
        return out
    eye = np.eye(A.shape[0])
    return np.array([C @ np.linalg.solve(si * eye - A, B) for si in s])


def __getattr__(name: str) -> Any:
    if name == "S4D":  # the layer lives with the models; re-exported here as part of the ssm API
        from nbsupport.models.s4d import S4D

        return S4D
    raise AttributeError(f"module 'nbsupport.ssm' has no attribute {name!r}")
