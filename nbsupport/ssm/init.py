"""Diagonal state matrices for S4D (Gu, Gupta, Goel & Ré 2022, "On the Parameterization and
Initialization of Diagonal State Space Models", §4): N//2 complex eigenvalues, one of each
conjugate pair, for the S4D layer's ``A_init``."""

from __future__ import annotations

import math

import numpy as np
import torch

from nbsupport.ssm.hippo import hippo_nplr

S4D_INITS = ("legs", "inv", "lin", "real", "random")
#: Every kind ``s4d_init`` accepts: the paper's five, and ``uniform`` (random frequencies spread
#: over S4D-Lin's band, to compare random and structured imaginary parts at equal coverage).
KINDS = (*S4D_INITS, "uniform")


def s4d_init(kind: str, N: int, generator: torch.Generator | None = None,
             dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """Diagonal A for S4D (Gu et al. 2022, §4): N//2 complex values, one of each conjugate pair.

    legs: eigenvalues of the LegS normal part (real part exactly -1/2); lin: -1/2 + i pi n;
    inv: -1/2 + i (N/pi)(N/(2n+1) - 1); real: -(n+1); uniform: -1/2 + i U[0, pi (N/2 - 1)] sorted (Lin's band);
    random: -1/2 + i exp(z), z ~ N(0, 1)
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
    elif kind == "uniform":
        u = torch.rand(N // 2, generator=generator, dtype=torch.float64) * math.pi * (N // 2 - 1)
        out = torch.complex(half, torch.sort(u).values)
    elif kind == "random":
        z = torch.randn(N // 2, generator=generator, dtype=torch.float64)
        out = torch.complex(half, torch.sort(torch.exp(z)).values)
    else:
        raise ValueError(f"unknown S4D init {kind!r}; use one of {KINDS}")
    return out.to(dtype)
