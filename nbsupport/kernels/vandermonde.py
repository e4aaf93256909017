"""The S4D Vandermonde kernel ``K[h, l] = 2 Re sum_n C[h, n] exp(dtA[h, n] l)`` (op ``s4d_kernel``).

Gu et al. 2022 (S4D), §3.2: the convolution kernel of a diagonal SSM is a Vandermonde
matrix-vector product. Paths:

- ``reference``: materializes the complex (H, N, L) powers; clear, float64-testable.
- ``fast`` (CPU fast path, :func:`blocked`): write ``l = i b + j`` so that
  ``z^l = z^(i b) z^j``; with ``P[h, n, i] = C exp(dtA i b)`` and ``Q[h, n, j] = exp(dtA j)``,
  ``K[h, i b + j] = 2 sum_n (Re P Re Q - Im P Im Q)``: one real batched matmul with inner
  dimension 2N, never building (H, N, L). Memory O(H N (L/b + b)) instead of O(H N L); every
  power is computed directly by ``exp`` (no repeated products), so large ``|dtA l|`` is exact
  to rounding. Differentiable through autograd.
- ``triton``: :mod:`nbsupport.kernels.vandermonde_triton` (real/imaginary pairs, forward and backward).
"""

from __future__ import annotations

import math

import torch

from nbsupport.kernels import register

register("s4d_kernel", "reference", "nbsupport.kernels.vandermonde:reference")
register("s4d_kernel", "fast", "nbsupport.kernels.vandermonde:blocked")
register("s4d_kernel", "triton", "nbsupport.kernels.vandermonde_triton:triton_s4d_kernel")


def _check(dtA: torch.Tensor, C: torch.Tensor, L: int) -> None:
    if not (dtA.is_complex() and C.is_complex()):
        raise TypeError("s4d_kernel: dtA and C must be complex tensors (one of each conjugate pair)")
    if dtA.ndim != 2 or C.shape != dtA.shape:
        raise ValueError(f"s4d_kernel: dtA and C must both be (H, N); got {tuple(dtA.shape)} and {tuple(C.shape)}")
    if L < 1:
        raise ValueError(f"s4d_kernel: L must be >= 1, got {L}")


def reference(dtA: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """Plain PyTorch: build ``exp(dtA l)`` for all (h, n, l), contract over n, take 2 Re."""
    _check(dtA, C, L)
    pos = torch.arange(L, device=dtA.device, dtype=dtA.real.dtype)
    powers = torch.exp(dtA[:, :, None] * pos)  # (H, N, L)
    return 2 * torch.einsum("hn,hnl->hl", C, powers).real


def block_size(L: int) -> int:
    """Block length b ~ sqrt(L), so both factors hold about H N sqrt(L) values."""
    return max(1, math.ceil(math.sqrt(L)))


def blocked(dtA: torch.Tensor, C: torch.Tensor, L: int, block: int | None = None) -> torch.Tensor:
    """CPU fast path: the ``l = i b + j`` factorization as one real batched matmul (see module doc)."""
    _check(dtA, C, L)
    b = block or block_size(L)
    nb = math.ceil(L / b)
    real = dtA.real.dtype
    j = torch.arange(b, device=dtA.device, dtype=real)
    i = torch.arange(nb, device=dtA.device, dtype=real) * b
    Q = torch.exp(dtA[:, :, None] * j)  # (H, N, b)
    P = C[:, :, None] * torch.exp(dtA[:, :, None] * i)  # (H, N, nb)
    left = torch.cat([P.real, -P.imag], dim=1).transpose(1, 2)  # (H, nb, 2N)
    right = torch.cat([Q.real, Q.imag], dim=1)  # (H, 2N, b)
    return (2 * torch.bmm(left, right)).reshape(dtA.shape[0], nb * b)[:, :L]
