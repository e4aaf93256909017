"""Long-range sequence tasks, generated from a seed or built from MNIST 5k.

- :func:`smnist`: sequential MNIST 5k, pixel by pixel (length 784, or 196 at ``size=14``).
- :func:`copying`: remember ``copy_len`` symbols across ``delay`` blanks, then repeat them
  (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).
- :func:`delayed_recall`: output the input signal ``delay`` steps ago; the input is band-limited
  noise ("How to Train Your HiPPO", §5: the delay task that ties dt to the dependency length).
- :func:`adding`: sum the two marked values of a long sequence (Hochreiter & Schmidhuber 1997).

Every task returns float inputs shaped (n, L, d_input) so one model interface serves all.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nbsupport.data.images import load_mnist5k

IGNORE = -100


def smnist(n_train: int = 4000, n_test: int = 1000, size: int = 28, seed: int = 0,
           permute: bool = False) -> dict[str, torch.Tensor]:
    """Sequential MNIST from the 5000-digit MNIST sample: x (n, size*size, 1) in [0, 1], y (n,).

    A seeded shuffle splits train/test (the file is sorted by label). ``size=14`` averages 2x2
    blocks (length 196); ``permute`` applies one seeded pixel permutation (psMNIST)."""
    if n_train + n_test > 5000:
        raise ValueError(f"MNIST 5k holds 5000 digits; asked for {n_train} + {n_test}")
    if 28 % size:
        raise ValueError(f"size must divide 28, got {size}")
    X, y = load_mnist5k()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    X = torch.from_numpy(X)[order].reshape(-1, 1, 28, 28)
    if size != 28:
        X = F.avg_pool2d(X, 28 // size)
    X = X.reshape(len(order), -1, 1)
    if permute:
        X = X[:, torch.randperm(X.shape[1], generator=g)]
    y = torch.from_numpy(y)[order]
    return {"x_train": X[:n_train], "y_train": y[:n_train],
            "x_test": X[n_train:n_train + n_test], "y_test": y[n_train:n_train + n_test]}


def copying(n: int, delay: int, n_symbols: int = 8, copy_len: int = 10, seed: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Copying task: x (n, L, n_symbols + 2) one-hot, y (n, L) with ``IGNORE`` off the answer.

    Tokens: 0 blank, 1 go-marker, 2.. symbols. Layout: ``copy_len`` symbols, ``delay`` blanks,
    the marker, ``copy_len - 1`` blanks; the targets are the symbols over the last ``copy_len``
    positions. L = 2 copy_len + delay."""
    g = torch.Generator().manual_seed(seed)
    L = 2 * copy_len + delay
    symbols = torch.randint(2, n_symbols + 2, (n, copy_len), generator=g)
    tokens = torch.zeros(n, L, dtype=torch.long)
    tokens[:, :copy_len] = symbols
    tokens[:, copy_len + delay] = 1
    y = torch.full((n, L), IGNORE, dtype=torch.long)
    y[:, -copy_len:] = symbols - 2
    return F.one_hot(tokens, n_symbols + 2).float(), y


def bandlimited_noise(n: int, length: int, cutoff: float, generator: torch.Generator) -> torch.Tensor:
    """(n, length) white noise keeping only frequencies below ``cutoff`` (cycles per step), unit variance."""
    z = torch.fft.rfft(torch.randn(n, length, generator=generator, dtype=torch.float64), dim=-1)
    freqs = torch.fft.rfftfreq(length)
    z[:, freqs > cutoff] = 0
    x = torch.fft.irfft(z, n=length, dim=-1)
    return (x / x.std(dim=-1, keepdim=True).clamp_min(1e-12)).float()


def delayed_recall(n: int, length: int, delay: int, cutoff: float = 0.02, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Delay task: x (n, L, 1) band-limited noise, y (n, L, 1) = x delayed by ``delay`` steps.

    Returns (x, y, mask) with mask (L,) True where the target exists (t >= delay); score with
    the R^2 of y over the masked positions. ``cutoff`` (cycles per step) sets the detail to recall."""
    if not 0 < delay < length:
        raise ValueError(f"need 0 < delay < length, got delay={delay}, length={length}")
    g = torch.Generator().manual_seed(seed)
    x = bandlimited_noise(n, length, cutoff, g)
    y = torch.zeros_like(x)
    y[:, delay:] = x[:, :-delay]
    mask = torch.arange(length) >= delay
    return x[..., None], y[..., None], mask


def adding(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Adding problem: x (n, L, 2) = (uniform values, marker), y (n,) = sum of the two marked values.

    One marker falls in the first half and one in the second, so the answer spans ~L/2 steps."""
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, length, generator=g)
    half = math.ceil(length / 2)
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, length, (n,), generator=g)
    marker = torch.zeros(n, length)
    rows = torch.arange(n)
    marker[rows, first] = 1
    marker[rows, second] = 1
    return torch.stack([values, marker], dim=-1), values[rows, first] + values[rows, second]


def r2_score(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """1 - SSE/SST over the positions in ``mask`` (all when None)."""
    if mask is not None:
        pred, target = pred[:, mask], target[:, mask]
    sse = (pred - target).pow(2).sum()
    sst = (target - target.mean()).pow(2).sum()
    return float(1 - sse / sst.clamp_min(1e-12))

