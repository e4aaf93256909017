"""Perturb-then-diagonalize (Yu, Mahoney & Erichson 2023, "Robustifying State-space Models for
Long Sequences via Approximate Diagonalization", §3-4) and transfer functions
``G(iω) = C (iωI − A)⁻¹ B`` of dense and diagonal systems."""

from __future__ import annotations

from typing import Any

import numpy as np

from nbsupport.ssm.hippo import hippo


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
