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

import torch
import torch.nn.functional as F
from torch import nn

from nbsupport.ssm import discretize, init_log_dt, s4d_init, ssm_kernel

SSM_PARAMS = ("log_dt", "log_A_real", "A_imag", "B")


class S4D(nn.Module):
    """Diagonal SSM layer: (batch, L, H) -> (batch, L, H).

    ``init`` is an :func:`nbsupport.ssm.s4d_init` kind, or pass ``A_init`` (N//2 complex) and
    optionally ``B_init`` (N//2 complex, default ones) directly (e.g. PTD). ``train_A=False``
    freezes A (and B); dt stays trainable. ``method`` is ``"zoh"`` or ``"bilinear"``."""

    def __init__(self, d_model: int, d_state: int = 64, init: str = "legs", dt_min: float = 1e-3,
                 dt_max: float = 1e-1, method: str = "zoh", train_A: bool = True,
                 A_init: torch.Tensor | None = None, B_init: torch.Tensor | None = None,
                 impl: str | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        H, n = d_model, d_state // 2
        A = (s4d_init(init, d_state, generator) if A_init is None else torch.as_tensor(A_init)).to(torch.complex64)
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
    ``**s4d_kw`` go to every :class:`S4D` (d_state, init, dt_min, dt_max, method, train_A, ...)."""

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


def pool(x: torch.Tensor, how: str | None) -> torch.Tensor:
    """Pool (batch, L, d) over time: ``mean``, ``last``, or None (keep every position)."""
    if how is None:
        return x
    if how == "mean":
        return x.mean(1)
    if how == "last":
        return x[:, -1]
    raise ValueError(f"pool must be 'mean', 'last' or None, got {how!r}")


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
