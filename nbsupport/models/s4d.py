"""The S4D layer and a small S4D sequence model (Gu et al. 2022, "On the Parameterization and
Initialization of Diagonal State Space Models", §3-4, and the s4 repository's ``s4d.py``).

:class:`S4D` is the linear SSM (H channels, N//2 complex states each) with a skip ``D u``:
``forward(u)`` convolves with the kernel by FFT, ``forward(u, mode="recurrent")`` runs the
discretized recurrence step by step; both give the same outputs (tested). SSM parameters
(``log_dt``, ``log_A_real``, ``A_imag``, ``B``) are flagged so :func:`param_groups` gives them
their own learning rate and no weight decay, a pitfall reproductions hit (S4D §4.2).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nbsupport.kernels import resolve
from nbsupport.models.pooling import pool

SSM_PARAMS = ("log_dt", "log_A_real", "A_imag", "B")


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



class S4D(nn.Module):
    """Diagonal SSM layer: (batch, L, H) -> (batch, L, H).

    ``A_init`` holds the N//2 complex eigenvalues (one of each conjugate pair), e.g.
    ``nbsupport.ssm.s4d_init("legs", N)`` or a PTD init; ``B_init`` (N//2 complex) defaults to
    ones. ``train_A=False`` freezes A (and B); dt stays trainable. ``method`` is ``"zoh"`` or
    ``"bilinear"``. The layer knows no init by name: the SSM theme package chooses A."""

    def __init__(self, d_model: int, A_init: torch.Tensor, d_state: int | None = None, dt_min: float = 1e-3,
                 dt_max: float = 1e-1, method: str = "zoh", train_A: bool = True,
                 B_init: torch.Tensor | None = None, impl: str | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        A = torch.as_tensor(A_init).to(torch.complex64)
        d_state = 2 * A.shape[-1] if d_state is None else d_state
        H, n = d_model, d_state // 2
        if A.shape != (n,):
            raise ValueError(f"S4D: A_init must have d_state//2 = {n} entries, got {tuple(A.shape)}")
        if (A.real >= 0).any():
            raise ValueError("S4D: A must have negative real parts (a stable system)")
        B = torch.ones(n, dtype=torch.complex64) if B_init is None else torch.as_tensor(B_init).to(torch.complex64)
        self.method, self.impl = method, impl
        self.log_dt = nn.Parameter(init_log_dt(H, dt_min, dt_max, generator))
        self.log_A_real = nn.Parameter(torch.log(-A.real).repeat(H, 1), requires_grad=train_A)
        self.A_imag = nn.Parameter(A.imag.repeat(H, 1), requires_grad=train_A)
        self.B = nn.Parameter(torch.view_as_real(B.repeat(H, 1)).clone(), requires_grad=train_A)
        self.C = nn.Parameter(torch.randn(H, n, 2, generator=generator) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(H, generator=generator))

    @property
    def A(self) -> torch.Tensor:
        return torch.complex(-torch.exp(self.log_A_real), self.A_imag)

    def kernel(self, L: int) -> torch.Tensor:
        """The (H, L) convolution kernel ``2 Re sum_n C Bbar Abar^l``."""
        return ssm_kernel(self.A, torch.view_as_complex(self.B), torch.view_as_complex(self.C),
                          self.log_dt, L, self.method, self.impl)

    def forward(self, u: torch.Tensor, mode: str = "conv") -> torch.Tensor:
        if mode == "recurrent":
            return self.forward_recurrent(u)
        if mode != "conv":
            raise ValueError(f"mode must be 'conv' or 'recurrent', got {mode!r}")
        L = u.shape[1]
        k = self.kernel(L)
        x = u.transpose(1, 2)  # (batch, H, L)
        y = torch.fft.irfft(torch.fft.rfft(x, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]
        return (y + x * self.D[:, None]).transpose(1, 2)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Abar, Bbar), each (H, N//2) complex."""
        return discretize(self.A, torch.view_as_complex(self.B), torch.exp(self.log_dt)[:, None], self.method)

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One recurrent step: u_t (batch, H) -> (y_t (batch, H), new state (batch, H, N//2))."""
        Abar, Bbar = self.discrete()
        if state is None:
            state = torch.zeros(u_t.shape[0], *Abar.shape, dtype=Abar.dtype, device=u_t.device)
        state = Abar * state + Bbar * u_t[..., None]
        y = 2 * (torch.view_as_complex(self.C) * state).sum(-1).real + self.D * u_t
        return y, state

    def forward_recurrent(self, u: torch.Tensor) -> torch.Tensor:
        state, ys = None, []
        for t in range(u.shape[1]):
            y, state = self.step(u[:, t], state)
            ys.append(y)
        return torch.stack(ys, dim=1)


class S4DBlock(nn.Module):
    """Pre-norm residual block: x + Linear-GLU(dropout(GELU(S4D(LayerNorm(x)))))."""

    def __init__(self, d_model: int, dropout: float = 0.0, **s4d_kw) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.ssm = S4D(d_model, **s4d_kw)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, 2 * d_model)

    def forward(self, x: torch.Tensor, mode: str = "conv") -> torch.Tensor:
        z = self.drop(F.gelu(self.ssm(self.norm(x), mode=mode)))
        return x + F.glu(self.out(z), dim=-1)


class S4DModel(nn.Module):
    """Encoder -> ``n_layers`` S4D blocks -> pooling (``mean``, ``last`` or None) -> decoder.

    Input (batch, L, d_input) floats; output (batch, d_output) when pooled, else (batch, L, d_output).
    ``**s4d_kw`` go to every :class:`S4D` (A_init, dt_min, dt_max, method, train_A, ...)."""

    def __init__(self, d_input: int, d_output: int, d_model: int = 64, n_layers: int = 2,
                 pool: str | None = "mean", dropout: float = 0.0, **s4d_kw) -> None:
        super().__init__()
        self.encoder = nn.Linear(d_input, d_model)
        self.blocks = nn.ModuleList(S4DBlock(d_model, dropout, **s4d_kw) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.pool = pool
        self.decoder = nn.Linear(d_model, d_output)

    def features(self, u: torch.Tensor, mode: str = "conv") -> torch.Tensor:
        x = self.encoder(u)
        for block in self.blocks:
            x = block(x, mode=mode)
        return self.norm(x)

    def forward(self, u: torch.Tensor, mode: str = "conv") -> torch.Tensor:
        return self.decoder(pool(self.features(u, mode), self.pool))

    def replace_head(self, d_output: int, pool: str | None) -> None:
        """New decoder and pooling, e.g. after self-pretraining (fine-tune for classification)."""
        w = self.decoder.weight
        self.decoder = nn.Linear(w.shape[1], d_output, dtype=w.dtype, device=w.device)
        self.pool = pool


def param_groups(model: nn.Module, lr: float, weight_decay: float = 0.01, ssm_lr: float = 1e-3) -> list[dict]:
    """Optimizer groups: SSM parameters (dt, A, B) at ``ssm_lr`` with no weight decay; matrices
    with ``weight_decay``; biases, norms and D without it. Frozen parameters are left out."""
    ssm, decay, plain = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf in SSM_PARAMS:
            ssm.append(p)
        elif p.ndim >= 2 and leaf != "C":
            decay.append(p)
        else:
            plain.append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay},
              {"params": plain, "lr": lr, "weight_decay": 0.0},
              {"params": ssm, "lr": ssm_lr, "weight_decay": 0.0, "name": "ssm"}]
    return [g for g in groups if g["params"]]
