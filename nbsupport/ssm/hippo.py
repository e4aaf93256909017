"""HiPPO operators (Gu et al. 2020, "HiPPO: Recurrent Memory with Optimal Polynomial
Projections", §2-3 and Appendix D; Gu et al. 2022, "How to Train Your HiPPO", §3): the
LegS / LegT / LagT / FouT matrices, the normal-plus-low-rank form of LegS, the bases, and the
online projection of a signal.

Conventions: ``hippo(measure, N)`` returns real float64 (A, B) for the continuous dynamics
``c'(t) = A c(t) + B f(t)`` with a unit timescale: LegS is time-varying (``c' = (A c + B f)/t``),
LegT (with the factor 1/2 of the s4 repository's ``transition("legt")``) remembers a window
of length 2, LagT weighs the past by
``exp(-age)``, FouT remembers a window of length 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.polynomial import laguerre, legendre
from scipy.linalg import solve_triangular

MEASURES = ("legs", "legt", "lagt", "fout")


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


def legs_lti_kernel(N: int, t: np.ndarray) -> np.ndarray:
    """Impulse response (N, len(t)) of the *time-invariant* LegS system ``x' = A x + B u``.

    "How to Train Your HiPPO" (Gu et al. 2022, §3, Theorem 2): ``exp(A t) B`` has the closed form
    ``K_n(t) = sqrt(2n+1) e^{-t} P_n(2 e^{-t} - 1)``, Legendre polynomials in the exponentially
    warped time ``e^{-t}``: the state projects the input onto a basis that fades like ``e^{-t}``.
    Discretized with step Δ, lag ``l`` sits at ``t = l Δ``, so the memory spans about ``1/Δ`` steps."""
    t = np.asarray(t, dtype=np.float64)
    z = np.exp(-t)
    return np.stack([math.sqrt(2 * k + 1) * z * legendre.legval(2 * z - 1, np.eye(N)[k]) for k in range(N)])
