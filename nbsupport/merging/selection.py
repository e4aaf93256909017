"""Which entries of a task vector a merge keeps: magnitude bounds, mergekit's exact selection,
the L1 rescale factor and the per-model seeds of DARE's drop masks.

This is the merging logic around the fused elementwise op
(:func:`nbsupport.kernels.merge_core.merge_core`, which applies the bounds, drops and
scales): TIES trims to the top ``density`` magnitudes (Yadav et al. 2023, "Resolving
Interference When Merging Models", §3 "Trim"); Model Breadcrumbs drops the top ``gamma``
outliers and keeps the next ``density`` (Davari & Belilovsky 2023, §3); DARE drops at random
and rescales (Yu et al. 2024, "Language Models are Super Mario", Eq. 2; mergekit matches each
tensor's L1 norm instead). The semantics are mergekit's ``sparsify`` module's. Bounds come from
a selection (``torch.kthvalue``), not a full sort.
"""

from __future__ import annotations

import zlib

import torch

from nbsupport.kernels.merge_core import keep_mask, lowbias32_int, uniform


def stream_seeds(seed: int, n: int, name: str = "") -> list[int]:
    """One 32-bit seed per model for tensor ``name``: independent of order and chunking."""
    salt = zlib.crc32(name.encode())
    return [lowbias32_int(lowbias32_int(int(seed) ^ salt) + 0x9E3779B9 * (i + 1)) for i in range(n)]


def _kth_abs(flat_abs: torch.Tensor, k: int) -> float:
    """k-th smallest (1-based) of ``flat_abs`` by selection."""
    return float(torch.kthvalue(flat_abs, k).values)


def magnitude_bounds(delta: torch.Tensor, density: float, gamma: float | None = None) -> tuple[float, float]:
    """(lo, hi) magnitude bounds that keep a ``density`` fraction of ``delta`` (mergekit semantics).

    ``gamma=None``: TIES trim, keep the top ``k = max(1, int(density·n))`` magnitudes
    (mergekit ``magnitude``). ``gamma`` given: Breadcrumbs, drop the top ``int(gamma·n)``
    outliers, keep the next ``int(density·n)`` (mergekit ``magnitude_outliers``: ascending
    ranks ``[n_bot, n_bot + target)``, ``n_bot = max(0, n - target - n_top)``).
    ``density ≥ 1`` keeps everything.
    """
    n = delta.numel()
    if density >= 1 or n == 0:
        return 0.0, float("inf")
    if density <= 0:
        return float("inf"), float("inf")
    w = delta.detach().reshape(-1).abs()
    if w.dtype != torch.float64:
        w = w.float()
    if gamma is None:
        k = max(1, int(density * n))
        return _kth_abs(w, n - k + 1), float("inf")
    target = int(density * n)
    if target == 0:
        return float("inf"), float("inf")
    n_bot = max(0, n - target - int(gamma * n))
    lo = 0.0 if n_bot == 0 else _kth_abs(w, n_bot + 1)
    hi = _kth_abs(w, n_bot + target)
    return lo, hi


def _kept_ranks(n: int, density: float, gamma: float | None) -> tuple[int, int]:
    """The ascending magnitude ranks [start, end) mergekit keeps."""
    if gamma is None:
        return n - max(1, int(density * n)), n
    target = int(density * n)
    n_bot = max(0, n - target - int(gamma * n))
    return n_bot, n_bot + target


def select(
    delta: torch.Tensor, density: float, gamma: float | None = None, tie_break: str = "sort"
) -> tuple[torch.Tensor, float, float]:
    """Exactly mergekit's selection: ``(delta', lo, hi)`` such that :func:`keep_mask` with the bounds
    keeps exactly the entries mergekit keeps, ``delta'`` being ``delta`` with the excluded entries
    that tie with a bound set to zero.

    The bounds come from :func:`magnitude_bounds` (selection). Only when entries tie with a bound,
    so that the bounds alone would keep more than mergekit's count, are the ties resolved:
    ``tie_break="sort"`` keeps the entries mergekit's own ``torch.argsort`` / ``torch.sort`` call
    picks (torch's sort is not stable, so this is the only way to get mergekit's tensors; it
    costs one full sort of that tensor), ``"index"`` counts a lower index as the larger magnitude
    (deterministic, no sort).
    """
    lo, hi = magnitude_bounds(delta, density, gamma)
    n = delta.numel()
    if n == 0 or density >= 1 or lo == float("inf"):
        return delta, lo, hi
    if tie_break not in ("sort", "index"):
        raise ValueError(f"tie_break must be 'sort' or 'index', got {tie_break!r}")
    a = delta.detach().reshape(-1).abs()
    if a.dtype != torch.float64:
        a = a.float()
    start, end = _kept_ranks(n, density, gamma)
    inside = (a >= lo) & (a <= hi)
    if int(inside.sum()) == end - start:
        return delta, lo, hi
    if tie_break == "sort":
        idx = torch.argsort(a, descending=True)[: end - start] if gamma is None else torch.sort(a).indices[start:end]
        keep = torch.zeros(n, dtype=torch.bool, device=a.device)
        keep[idx] = True
    else:
        keep = (a > lo) & (a < hi)
        for v in sorted({lo, hi} - {float("inf")}):
            tied = (a == v).nonzero().flatten()
            c = tied.numel()
            rank = int((a < v).sum()) + (c - 1 - torch.arange(c, device=a.device))
            keep[tied[(rank >= start) & (rank < end)]] = True
    out = delta.reshape(-1).masked_fill(inside & ~keep, 0)
    return out.reshape(delta.shape), lo, hi


def l1_rescale(
    delta: torch.Tensor, lo: float, hi: float, drop: float, seed: int, chunk: int = 1 << 22, eps: float = 1e-7,
    before: float | None = None,
) -> float:
    """mergekit's rescale: ``‖d‖₁ / ‖d ⊙ keep‖₁`` (1 when either is below ``eps``), in chunks.

    ``before``: ``‖d‖₁`` of the tensor before ties were zeroed by :func:`select`, if they were.
    """
    flat = delta.reshape(-1)
    total = after = 0.0
    for s in range(0, flat.numel(), chunk):
        x = flat[s : s + chunk]
        k = keep_mask(x, lo, hi, drop, seed, s)
        total += float(x.abs().sum(dtype=torch.float64))
        after += float((x.abs() * k).sum(dtype=torch.float64))
    before = total if before is None else before
    if before < eps or after < eps:
        return 1.0
    return before / after


# ---------------------------------------------------------------- diagnostics on whole task vectors
def _flat(tv: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tv.values()])


def trim(tv: dict[str, torch.Tensor], density: float, scope: str = "tensor") -> dict[str, torch.Tensor]:
    """The task vector with all but its top ``density`` magnitudes zeroed (TIES' trim, ties
    kept): per tensor (mergekit) or over the whole model (``scope="model"``, the TIES paper)."""
    if scope not in ("tensor", "model"):
        raise ValueError(f"scope must be 'tensor' or 'model', got {scope!r}")
    if scope == "model":
        lo, _ = magnitude_bounds(_flat(tv), density)
        return {k: v * (v.abs() >= lo) for k, v in tv.items()}
    return {k: v * (v.abs() >= magnitude_bounds(v, density)[0]) for k, v in tv.items()}


def top_share(tv: dict[str, torch.Tensor], density: float, scope: str = "tensor") -> float:
    """Share of the task vector's squared L2 norm held by the entries :func:`trim` keeps:
    near 1 when a few large entries carry it, near ``density`` when magnitudes are flat."""
    total = float(_flat(tv).double().square().sum())
    kept = float(_flat(trim(tv, density, scope)).double().square().sum())
    return kept / total if total > 0 else 1.0


# ---------------------------------------------------------------- DELLA's magnitude-ranked drop
def della_keep_prob(delta: torch.Tensor, density: float, epsilon: float) -> torch.Tensor:
    """DELLA's MagPrune keep probabilities (Deep et al. 2024, "DELLA-Merging", §3.1; mergekit's
    ``della_magprune``): within each slice along dimension 1 (a row of a matrix; a vector is
    one row), the entry of magnitude rank r of n (1 = smallest) is kept with probability
    ``density - epsilon + 2·epsilon·(r-1)/(n-1)``, so larger entries survive more often and the
    mean keep rate is ``density``. Requires ``0 < density ± epsilon < 1``.
    """
    if not (0 < density - epsilon and density + epsilon < 1):
        raise ValueError(f"DELLA needs 0 < density ± epsilon < 1; got density {density}, epsilon {epsilon}")
    x = delta.abs() if delta.dim() >= 2 else delta.abs().unsqueeze(0)
    ranks = x.argsort(dim=1, stable=True).argsort(dim=1).to(torch.float64)
    n = x.shape[1]
    frac = ranks / (n - 1) if n > 1 else torch.zeros_like(ranks)
    return (density - epsilon + 2 * epsilon * frac).reshape(delta.shape)


def della_mask(delta: torch.Tensor, density: float, epsilon: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, keep probability) for one task-vector tensor: entry j is kept when the
    counter-based uniform ``u(seed, j)`` falls below its :func:`della_keep_prob` (the same
    distribution as mergekit's ``torch.bernoulli``, reproducible from the seed)."""
    p = della_keep_prob(delta, density, epsilon)
    u = uniform(seed, torch.arange(delta.numel(), device=delta.device)).reshape(delta.shape)
    return u.to(torch.float64) < p, p
