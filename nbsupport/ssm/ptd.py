"""Perturb-then-diagonalize (Yu, Mahoney & Erichson 2023, "Robustifying State-space Models for
Long Sequences via Approximate Diagonalization", §3-4) and transfer functions
``G(iω) = C (iωI − A)⁻¹ B`` of dense and diagonal systems."""

from __future__ import annotations

from typing import Any

import numpy as np

from nbsupport.ssm.hippo import hippo


def _vector_condition(V: np.ndarray) -> float:
    """2-norm condition number of an eigenvector matrix, its columns normalized."""
    return float(np.linalg.cond(V / np.linalg.norm(V, axis=0, keepdims=True)))


def eig_condition(M: np.ndarray) -> float:
    """2-norm condition number of the eigenvector matrix of M (columns normalized)."""
    return _vector_condition(np.linalg.eig(M)[1])


def ptd_init(N: int, eps: float = 0.1, measure: str = "legs", tries: int = 64, seed: int = 0,
             absolute: bool = False) -> dict[str, Any]:
    """Perturb-then-diagonalize (Yu et al. 2023, §3-4): diagonalize ``A + E`` with ``||E||_2 = eps ||A||_2``
    (``absolute=True``: ``||E||_2 = eps``; a fixed absolute size keeps the transfer-function error
    uniform in N, while a fixed fraction of ``||A||``, which grows with N, does not).

    The paper chooses E by minimizing ``κ(V) + γ ||E||`` (§4.2). With the size of E fixed by
    ``eps`` the γ term is a constant, so we minimize κ(V) by rejection: among ``tries`` random
    Gaussian directions, the draw whose ``A + E`` has only stable poles (real parts < 0) and the
    best-conditioned eigenvector matrix. Returns Lambda (N,), V, Vinv_B = V^-1 B (the diagonal
    system: ``C V`` and ``V^-1 B`` leave the transfer function unchanged), E, cond (κ(V)),
    ``stable_draws`` (how many draws were stable) and ``pairs`` (see :func:`ptd_s4d_init`)."""
    A, B = hippo(measure, N)
    rng = np.random.default_rng(seed)
    norm = 1.0 if absolute else np.linalg.norm(A, 2)
    best, stable = None, 0
    for _ in range(max(1, tries)):
        G = rng.standard_normal((N, N))
        E = eps * norm * G / np.linalg.norm(G, 2)
        lam, V = np.linalg.eig(A + E)
        cond = _vector_condition(V)
        ok = bool((lam.real < 0).all())
        stable += ok
        key = (not ok, cond)  # stable draws first, then the best conditioned
        if best is None or key < best[0]:
            best = (key, E, lam, V, cond)
    _, E, lam, V, cond = best
    VinvB = np.linalg.solve(V, B.astype(complex))
    return {"Lambda": lam, "V": V, "Vinv_B": VinvB, "E": E, "cond": cond, "stable_draws": stable,
            "pairs": _one_per_pair(lam, VinvB)}


def _one_per_pair(lam: np.ndarray, VinvB: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One eigenvalue of each conjugate pair (imaginary part > 0) and every real one, for the S4D
    convention ``K = 2 Re sum_n C_n B_n ...``: a real pole counts once, so its B is halved."""
    tol = 1e-9 * max(1.0, float(np.abs(lam).max()))
    upper = lam.imag > tol
    real = np.abs(lam.imag) <= tol
    keep = np.concatenate([np.flatnonzero(upper), np.flatnonzero(real)])
    b = VinvB[keep].copy()
    b[upper.sum():] /= 2
    return lam[keep], b


def ptd_s4d_init(N: int, eps: float = 0.1, tries: int = 64, seed: int = 0, absolute: bool = False) -> dict[str, Any]:
    """A PTD initialization for the S4D layer: ``A_init`` (stable poles, one per conjugate pair
    plus each real pole) and ``B_init = V^-1 B`` scaled globally so its mean modulus is 1 (the
    scale of S4D's ``B = 1``), from :func:`ptd_init` on HiPPO-LegS. ``info`` has κ(V), the number
    of real poles and the global scale. The layer then has ``len(A_init)`` states per channel:
    ``N/2`` plus half the number of real poles."""
    out = ptd_init(N, eps, "legs", tries, seed, absolute)
    lam, b = out["pairs"]
    if (lam.real >= 0).any():
        raise ValueError(f"ptd_s4d_init: no stable draw among {tries} at eps={eps}; use a smaller eps "
                         "or more tries")
    scale = float(np.abs(b).mean())
    return {"A_init": lam, "B_init": b / scale, "cond": out["cond"], "scale": scale,
            "real_poles": int((np.abs(lam.imag) <= 1e-9 * max(1.0, float(np.abs(lam).max()))).sum()),
            "stable_draws": out["stable_draws"]}


def transfer_function(A: np.ndarray, B: np.ndarray, C: np.ndarray, omega: np.ndarray,
                      conj_pairs: bool = False, chunk: int = 256) -> np.ndarray:
    """``G(i w) = C (i w I - A)^-1 B`` on the frequencies ``omega``.

    A (N, N) dense, or (N,) diagonal; with ``conj_pairs`` the diagonal system holds one of each
    conjugate pair and the conjugates are added (the S4D convention). C (N,) gives (len(omega),);
    C (k, N), k output maps at once, gives (k, len(omega)). Dense systems are solved in batches of
    ``chunk`` frequencies."""
    A, B, C = (np.asarray(v, dtype=complex) for v in (A, B, C))
    s = 1j * np.asarray(omega, dtype=np.float64)
    if A.ndim == 1:
        X = B[None, :] / (s[:, None] - A[None, :])  # (W, N)
        out = X @ C.T
        if conj_pairs:
            out = out + (B.conj()[None, :] / (s[:, None] - A.conj()[None, :])) @ C.conj().T
        return out.T
    eye = np.eye(A.shape[0])
    X = np.concatenate([np.linalg.solve(s[i:i + chunk, None, None] * eye - A, np.broadcast_to(B, (len(s[i:i + chunk]), len(B)))[..., None])[..., 0]
                        for i in range(0, len(s), chunk)])
    return (X @ C.T).T
