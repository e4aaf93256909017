"""Merge methods on state dicts (name -> tensor), with mergekit's parameter names and semantics.

``merge(method, base, models, **params)`` runs one method over every tensor. Parameters:

- per model (a scalar for all, or one value per model): ``weight`` (default 1), ``density``
  (fraction kept, default 1; DARE's drop rate is ``p = 1 - density``), ``gamma``
  (Breadcrumbs' outlier fraction, default 0.01), ``epsilon`` (DELLA's spread of keep
  probabilities, default 0.15);
- shared: ``normalize``, ``rescale``, ``lambda`` (pass ``lam=`` or ``**{"lambda": x}``),
  ``seed`` (DARE, DELLA), ``t`` (SLERP), ``filter_wise`` (Model Stock),
  ``select_topk`` (SCE), ``max_iter``/``tol`` (Karcher), ``nuslerp_row_wise``/``nuslerp_flatten``,
  ``impl`` (kernel path). Each method takes only the parameters :data:`REGISTRY` declares
  for it; any other is an error naming them.

mergekit semantics by default, so a mergekit config gives the same tensors (DARE draws its
own reproducible mask, so only its distribution matches mergekit's ``torch.bernoulli``).
The papers' variants are a parameter away:

- ``trim_scope="model"``: TIES / Breadcrumbs / PCB select magnitudes over the whole
  flattened task vector (the papers) instead of per tensor (mergekit, the default);
- ``rescale="inverse"``: DARE rescales survivors by ``1/(1-p)`` (the paper) instead of
  matching each tensor's L1 norm (mergekit's ``rescale: true``);
- ``tie_break="index"``: entries whose magnitude ties with the trim threshold are resolved by
  index (lower index wins) instead of by the ``torch.argsort`` call mergekit makes (the default
  ``"sort"``, needed for identical tensors because torch's sort is not stable; it sorts only
  tensors that have such ties).

References: task arithmetic (Ilharco et al. 2023), TIES (Yadav et al. 2023), DARE (Yu et al.
2024), Model Breadcrumbs (Davari & Belilovsky 2023), PCB (Du et al. 2024), SCE (Wan et al. 2024), Fisher merging
(Matena & Raffel 2022), Model Stock (Jang et al. 2024), layer swapping (Bandarkar et al. 2024).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from nbsupport.kernels.merge_core import merge_core
from nbsupport.merging.selection import (
    della_mask,
    l1_rescale,
    magnitude_bounds,
    select,
    stream_seeds,
)
from nbsupport.merging.validate import MergeError, check_parameters

StateDict = Mapping[str, torch.Tensor]

#: Generalized task arithmetic methods: (sparsification, consensus, default normalize, default rescale)
GTA = {
    "task_arithmetic": (None, None, False, False),
    "ties": ("magnitude", "sum", True, False),
    "dare_linear": ("random", None, False, True),
    "dare_ties": ("random", "sum", False, True),
    "breadcrumbs": ("magnitude_outliers", None, False, False),
    "breadcrumbs_ties": ("magnitude_outliers", "sum", False, False),
    "della": ("della_magprune", "sum", True, True),
    "della_linear": ("della_magprune", None, False, True),
}


# ---------------------------------------------------------------- checks and helpers
def check_compatible(base: StateDict | None, models: Sequence[StateDict]) -> list[str]:
    """The shared tensor names; raises :class:`MergeError` on mismatched names or shapes."""
    if not models:
        raise MergeError("no models to merge")
    ref = base if base is not None else models[0]
    names = list(ref)
    for i, m in enumerate(models):
        if set(m) != set(ref):
            missing, extra = sorted(set(ref) - set(m)), sorted(set(m) - set(ref))
            raise MergeError(f"model {i} tensor names differ from the base: missing {missing[:5]}, extra {extra[:5]}")
        for k in names:
            if tuple(m[k].shape) != tuple(ref[k].shape):
                raise MergeError(f"model {i} tensor {k!r} has shape {tuple(m[k].shape)}, base has {tuple(ref[k].shape)}")
    return names


def per_model(value: Any, n: int, name: str) -> list[float]:
    """A per-model parameter as a list of n floats (scalars broadcast)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise MergeError(f"{name} has {len(value)} values for {n} models")
        return [float(v) for v in value]
    return [float(value)] * n


def check_density(density: Sequence[float]) -> None:
    for d in density:
        if not 0 < d <= 1:
            raise MergeError(f"density must be in (0, 1], got {d}")


def _work(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64 if t.dtype == torch.float64 else torch.float32)


def task_vectors(base: StateDict, models: Sequence[StateDict]) -> list[dict[str, torch.Tensor]]:
    """τᵢ = θᵢ - θ₀ for every floating-point tensor (Ilharco et al. 2023, Eq. 1)."""
    names = check_compatible(base, models)
    return [{k: _work(m[k]) - _work(base[k]) for k in names if base[k].is_floating_point()} for m in models]


def sign_conflicts(tvs: Sequence[StateDict]) -> float:
    """Fraction of coordinates where at least two nonzero task-vector entries disagree in sign."""
    conflict = total = 0
    for k in tvs[0]:
        s = torch.stack([t[k].sign().reshape(-1) for t in tvs])
        conflict += int(((s > 0).any(0) & (s < 0).any(0)).sum())
        total += s.shape[1]
    return conflict / max(total, 1)


def interpolate(a: StateDict, b: StateDict, alpha: float) -> dict[str, torch.Tensor]:
    """(1-α)·a + α·b for floating tensors (others from ``a``)."""
    return {k: torch.lerp(a[k], b[k].to(a[k].dtype), alpha) if a[k].is_floating_point() else a[k] for k in a}


# ---------------------------------------------------------------- generalized task arithmetic
def _bounds(d: torch.Tensor, sparsify: str | None, density: float, gamma: float, tie_break: str):
    """(task vector with excluded ties zeroed, lo, hi, drop) for one task vector tensor."""
    if sparsify is None or density >= 1:
        return d, 0.0, float("inf"), 0.0
    if sparsify == "random":
        return d, 0.0, float("inf"), 1.0 - density
    d, lo, hi = select(d, density, gamma if sparsify == "magnitude_outliers" else None, tie_break)
    return d, lo, hi, 0.0


def gta_tensor(
    method: str,
    base: torch.Tensor,
    deltas: list[torch.Tensor],
    weight: list[float],
    density: list[float],
    gamma: list[float],
    seeds: list[int],
    normalize: bool,
    rescale: bool | str,
    lam: float,
    bounds: list[tuple[float, float]] | None = None,
    impl: str | None = None,
    tie_break: str = "sort",
    epsilon: list[float] | None = None,
) -> torch.Tensor:
    """One tensor of a GTA method; ``deltas`` are flattened work-dtype task vectors."""
    sparsify, consensus, _, _ = GTA[method]
    lo, hi, drop, scale, kept = [], [], [], [], []
    for i, d in enumerate(deltas):
        if sparsify == "della_magprune":
            d2, s = _della(d, base.shape, density[i], epsilon[i], seeds[i], rescale)
            kept.append(d2)
            lo.append(0.0)
            hi.append(float("inf"))
            drop.append(0.0)
            scale.append(s)
            continue
        if bounds is not None and sparsify not in (None, "random") and density[i] < 1:
            d2, b = d, (*bounds[i], 0.0)
        else:
            d2, *b = _bounds(d, sparsify, density[i], gamma[i], tie_break)
        s = 1.0
        if sparsify is not None and density[i] < 1 and rescale:
            before = float(d.abs().sum(dtype=torch.float64)) if d2 is not d else None
            s = 1.0 / density[i] if rescale == "inverse" else l1_rescale(d2, *b, seeds[i], before=before)
        kept.append(d2)
        lo.append(b[0])
        hi.append(b[1])
        drop.append(b[2])
        scale.append(s)
    mixed = merge_core(kept, weight, lo, hi, drop, scale, seeds, consensus, normalize, impl=impl)
    if lam != 1:
        mixed = mixed * lam
    return (_work(base).reshape(-1) + mixed).reshape(base.shape).to(base.dtype)


def _della(d: torch.Tensor, shape, density: float, epsilon: float, seed: int, rescale: bool | str):
    """(DELLA-dropped task vector, scale): MagPrune's ranked drop, then mergekit's L1 rescale
    (``rescale=True``), the paper's per-entry ``1/p`` (``"inverse"``), or none."""
    if density >= 1:
        return d, 1.0
    if not (0 < density - epsilon and density + epsilon < 1):
        raise MergeError(f"della needs 0 < density ± epsilon < 1; got density {density}, epsilon {epsilon}")
    keep, p = della_mask(d.reshape(shape), density, epsilon, seed)
    keep, p = keep.reshape(-1), p.reshape(-1)
    if rescale == "inverse":
        return torch.where(keep, d / p.to(d.dtype), torch.zeros_like(d)), 1.0
    d2 = d * keep
    if not rescale:
        return d2, 1.0
    before, after = float(d.abs().sum(dtype=torch.float64)), float(d2.abs().sum(dtype=torch.float64))
    return d2, (before / after if before >= 1e-7 and after >= 1e-7 else 1.0)


def _model_bounds(tvs: list[dict[str, torch.Tensor]], sparsify: str, density, gamma):
    """TIES/Breadcrumbs paper variant: one magnitude threshold over each whole task vector."""
    out = []
    for i, tv in enumerate(tvs):
        flat = torch.cat([t.reshape(-1) for t in tv.values()])
        out.append(magnitude_bounds(flat, density[i], gamma[i] if sparsify == "magnitude_outliers" else None))
    return out


# ---------------------------------------------------------------- PCB
def _quantile_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Clamp each row of (n, d) ``x`` to its order statistics at ``low`` and ``1-high`` (PCB code)."""
    d = x.shape[1]
    lo = torch.kthvalue(x, int(d * low) + 1, dim=1, keepdim=True).values
    hi = torch.kthvalue(x, max(1, int(d * (1 - high))), dim=1, keepdim=True).values
    return torch.maximum(torch.minimum(x, hi), lo)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
    return (x - lo) / (hi - lo).clamp(min=1e-12)


def pcb_merge(tvs: torch.Tensor, density: float, clip: float = 1e-4) -> torch.Tensor:
    """PCB (Du et al. 2024, Eqs. 2-6, as in the official code) on stacked (n, d) task vectors.

    Intra-balancing ``exp(n·minmax(|τᵢ|)²)``, inter-balancing ``tanh(τᵢ ⊙ Σⱼτⱼ)``, β their
    product; keep the top ``density`` of β per task (minmax of β clamped below at its
    ``1-density`` quantile); ``τ_m = Σ β̂ᵢτᵢ / Σ β̂ᵢ``. Magnitudes are first clipped to their
    ``clip`` and ``1-clip`` quantiles, as in the official code.
    """
    n = tvs.shape[0]
    mag = _quantile_clamp(tvs.abs(), clip, clip)
    intra = torch.exp(n * _minmax(mag) ** 2)
    inter = torch.tanh(tvs * tvs.sum(0, keepdim=True))
    beta = _minmax(_quantile_clamp(intra * inter, 1 - density, 0.0))
    return (tvs.sign() * mag * beta).sum(0) / beta.sum(0).clamp(min=1e-12)


# ---------------------------------------------------------------- SCE
def sce_tensor(base: torch.Tensor, models: list[torch.Tensor], select_topk: float = 1.0) -> torch.Tensor:
    """SCE (Wan et al. 2024, "FuseChat: Knowledge Fusion of Chat Models", §3.3), as mergekit's ``sce``.

    Select: keep the coordinates whose task-vector variance across models (population variance)
    is among the top ``select_topk`` of the coordinates with nonzero variance (all when
    ``select_topk >= 1``, none when the count rounds to 0). Calculate: one weight per model,
    ``wᵢ = mean(τᵢ²) / Σⱼ mean(τⱼ²)`` (uniform when all are 0). Erase: per coordinate, drop
    the entries whose sign differs from the sign of Σᵢτᵢ (+ on ties). Then
    ``θ = θ₀ + Σᵢ wᵢaᵢτᵢ / Σᵢ wᵢaᵢ`` (the divisor 1 where no entry is kept).
    """
    b = _work(base)
    tvs = torch.stack([_work(m) - b for m in models])
    if select_topk < 1:
        var = tvs.var(0, unbiased=False).reshape(-1)
        k = int(abs(select_topk) * int(torch.count_nonzero(var)))
        keep = torch.zeros_like(var)
        if k > 0:
            keep[torch.topk(var.abs(), k).indices] = 1
        tvs = tvs * keep.reshape(b.shape)
    energy = [float(t.square().sum()) / max(t.numel(), 1) for t in tvs]
    total = sum(energy)
    w = torch.tensor([e / total for e in energy] if total > 0 else [1 / len(energy)] * len(energy), dtype=tvs.dtype)
    w = w.reshape(-1, *([1] * b.dim()))
    majority = torch.where(tvs.sum(0) >= 0, 1.0, -1.0).to(tvs.dtype)
    kept = w * (tvs.sign() == majority)
    div = kept.sum(0)
    div[div == 0] = 1
    return (b + (tvs * kept).sum(0) / div).to(base.dtype)


# ---------------------------------------------------------------- other per-tensor methods
def model_stock_tensor(base: torch.Tensor, models: list[torch.Tensor], filter_wise: bool = False) -> torch.Tensor:
    """Model Stock (Jang et al. 2024): t = N·c/(1+(N-1)c), θ = t·mean θᵢ + (1-t)·θ₀ (mergekit)."""
    w0 = _work(base)
    ws = [_work(m) for m in models]
    shape = w0.shape
    if filter_wise:
        if w0.dim() == 1:
            w0, ws = w0[None], [w[None] for w in ws]
    else:
        w0, ws = w0.reshape(-1), [w.reshape(-1) for w in ws]
    off = [w - w0 for w in ws]
    cos = []
    for i, a in enumerate(off):
        for b in off[i + 1:]:
            norm = torch.norm(a, dim=-1) * torch.norm(b, dim=-1)
            cos.append(((a * b).sum(-1) / norm.clamp(min=1e-6)).clamp(-1, 1))
    c = torch.stack(cos).mean(0).unsqueeze(-1)
    n = len(ws)
    den = 1 + (n - 1) * c
    singular = den.abs() < 1e-6
    t = torch.where(singular, torch.zeros_like(c), n * c / torch.where(singular, torch.ones_like(den), den))
    return (t * (sum(ws) / n) + (1 - t) * w0).reshape(shape).to(base.dtype)


def slerp_tensor(t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995, eps: float = 1e-8) -> torch.Tensor:
    """Spherical interpolation of the whole tensor; linear when |cos| > ``dot_threshold`` (mergekit)."""
    a, b = _work(v0).reshape(-1), _work(v1).reshape(-1)
    na, nb = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    na = na if na > eps else torch.ones_like(na)
    nb = nb if nb > eps else torch.ones_like(nb)
    dot = float(((a / na) * (b / nb)).sum().clamp(-1, 1))
    if abs(dot) > dot_threshold:
        out = (1 - t) * a + t * b
    else:
        theta = torch.acos(torch.tensor(dot, dtype=torch.float64))
        s = torch.sin(theta)
        out = float(torch.sin((1 - t) * theta) / s) * a + float(torch.sin(t * theta) / s) * b
    return out.reshape(v0.shape).to(v0.dtype)


def nuslerp_tensor(t: float, v0: torch.Tensor, v1: torch.Tensor, row_wise: bool = False, flatten: bool = True,
                   eps: float = 1e-8) -> torch.Tensor:
    """NuSLERP (mergekit's ``nuslerp``): spherical interpolation of ``v0`` and ``v1`` at ``t``,
    ``(sin((1-t)θ)·v0 + sin(tθ)·v1) / sin θ`` with θ the angle between them, over the whole
    tensor (``flatten``), per row of the last dimension, or per column (``row_wise``: along
    dimension 0); linear where ``|sin θ| < eps``. Unlike :func:`slerp_tensor` the inputs are
    not re-normalized: the result interpolates the vectors themselves."""
    a, b = _work(v0), _work(v1)
    shape = a.shape
    if flatten:
        a, b = a.reshape(-1), b.reshape(-1)
    elif row_wise:
        a, b = a.transpose(0, -1), b.transpose(0, -1)
    ua = a / a.norm(dim=-1, keepdim=True).clamp(min=1e-7)
    ub = b / b.norm(dim=-1, keepdim=True).clamp(min=1e-7)
    theta = torch.acos((ua * ub).sum(-1, keepdim=True).clamp(-1, 1))
    sin = torch.sin(theta)
    colinear = sin.abs() < eps
    res = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.where(colinear, torch.ones_like(sin), sin)
    res = torch.where(colinear, (1 - t) * a + t * b, res)
    if row_wise and not flatten:
        res = res.transpose(0, -1)
    return res.reshape(shape).to(v0.dtype)


def karcher_tensor(tensors: list[torch.Tensor], max_iter: int = 10, tol: float = 1e-5) -> torch.Tensor:
    """The Karcher (Fréchet) mean of the tensors' directions on the unit sphere, times their mean
    norm (mergekit's ``karcher``, equal weights).

    Directions ``uᵢ = θᵢ/‖θᵢ‖`` (tensors with norm ≤ ``tol`` take no part); start from the
    normalized mean of the ``uᵢ`` and take up to ``max_iter`` Riemannian gradient steps
    ``m ← cos‖v‖·m + sin‖v‖·v/‖v‖`` with ``v = Σᵢ (1/k)·θᵢ/sin θᵢ·(uᵢ - cos θᵢ·m)``,
    ``θᵢ = arccos(m·uᵢ)`` (the mean of the log maps), stopping when ``‖v‖ < tol``. The result
    is ``m · mean ‖θᵢ‖`` (zero-norm tensors count in that mean).
    """
    if len(tensors) == 1:
        return tensors[0].clone()
    work = [_work(t).reshape(-1) for t in tensors]
    norms = [float(torch.linalg.vector_norm(t)) for t in work]
    units = [t / n for t, n in zip(work, norms, strict=True) if n > tol]
    if not units:
        return torch.zeros_like(tensors[0])
    alpha = 1.0 / len(units)
    mean = sum(alpha * u for u in units)
    mean = units[0].clone() if float(mean.norm()) < tol else mean / mean.norm()
    for _ in range(max_iter):
        tangent = torch.zeros_like(mean)
        for u in units:
            dot = torch.clamp(mean @ u, -1.0, 1.0)
            theta = torch.arccos(dot)
            if float(theta) >= tol:
                tangent += alpha * (theta / torch.sin(theta)) * (u - dot * mean)
        size = tangent.norm()
        if float(size) < tol:
            break
        mean = torch.cos(size) * mean + torch.sin(size) * (tangent / size)
        if float(mean.norm()) > tol:
            mean = mean / mean.norm()
    return (sum(norms) / len(norms) * mean).reshape(tensors[0].shape).to(tensors[0].dtype)


def arcee_fusion_tensor(base: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
    """Arcee Fusion (mergekit's ``arcee_fusion``): keep the model's change only where it matters.

    Importance ``|θ - θ₀| · KL(softmax(θ) ‖ softmax(θ₀))``, the KL taken along the last
    dimension (softmax + 1e-8 on both sides); the threshold is ``median + 1.5·(q3 - q1)`` of the
    importances, each quantile the sorted value at index ``⌊q·(n-1)⌋``; ``θ₀ + (θ - θ₀)·[importance ≥
    threshold]``. mergekit estimates the quantiles from a random sample of 1M entries for
    larger tensors; here they are exact (the same values up to 1M entries).
    """
    b, m = _work(base), _work(model)
    p = torch.softmax(m, dim=-1) + 1e-8
    q = torch.softmax(b, dim=-1) + 1e-8
    importance = (m - b).abs() * (p * torch.log(p / q)).sum(-1, keepdim=True)
    flat = importance.reshape(-1).sort().values
    q1, median, q3 = (flat[int(f * (flat.numel() - 1))] for f in (0.25, 0.5, 0.75))
    keep = importance >= median + 1.5 * (q3 - q1)
    return (b + (m - b) * keep).to(base.dtype)


LAYER_PATTERN = r"(?:^|\.)(?:layers?|h|blocks?)\.(\d+)\."


def layer_of(name: str, pattern: str = LAYER_PATTERN) -> int | None:
    """The transformer layer index in a parameter name (``encoder.layer.3.attention...`` -> 3)."""
    m = re.search(pattern, name)
    return int(m.group(1)) if m else None


def swap_weights(n_layers: int, bottom: int, top: int, blend: int = 0) -> list[float]:
    """Per layer, the donor's share: 1 for the ``bottom`` and ``top`` layers, 0 in the middle,
    ramping linearly over ``blend`` layers on the middle side of each seam."""
    out = []
    for layer in range(n_layers):
        if layer < bottom or layer >= n_layers - top:
            out.append(1.0)
            continue
        dist = min(layer - bottom + 1 if bottom > 0 else n_layers, n_layers - top - layer if top > 0 else n_layers)
        out.append(max(0.0, 1 - dist / (blend + 1)) if blend > 0 else 0.0)
    return out


# ---------------------------------------------------------------- the method registry
class Inputs(NamedTuple):
    """What a method's implementation receives: the models, the tensors to merge and the parameters."""

    base: StateDict | None
    models: list[StateDict]
    ref: StateDict
    floats: list[str]
    weight: list[float]
    density: list[float]
    gamma: list[float]
    lam: float
    params: dict[str, Any]


@dataclass(frozen=True)
class MergeMethod:
    """One merge method, in the spirit of mergekit's method registry: the parameters it accepts
    (any other is an error, not silently ignored), whether it needs a base model, how many
    models it takes, and the function computing the merged floating-point tensors."""

    name: str
    params: tuple[str, ...]
    needs_base: bool
    run: Callable[[Inputs], dict[str, torch.Tensor]]
    models: tuple[int, int | None] = (1, None)
    doc: str = ""


def _linear(x: Inputs) -> dict[str, torch.Tensor]:
    tot = sum(x.weight) if x.params.get("normalize", True) and abs(sum(x.weight)) > 0 else 1.0
    return {k: (sum(w * _work(m[k]) for w, m in zip(x.weight, x.models, strict=True)) / tot).to(x.ref[k].dtype)
            for k in x.floats}


def _gta(method: str) -> Callable[[Inputs], dict[str, torch.Tensor]]:
    def run(x: Inputs) -> dict[str, torch.Tensor]:
        sparsify, _, def_norm, def_rescale = GTA[method]
        p, base, n = x.params, x.base, len(x.models)
        scope = p.get("trim_scope", "tensor")
        if scope not in ("tensor", "model"):
            raise MergeError(f"trim_scope must be 'tensor' or 'model', got {scope!r}")
        bounds = None
        if scope == "model" and sparsify in ("magnitude", "magnitude_outliers"):
            bounds = _model_bounds(task_vectors(base, x.models), sparsify, x.density, x.gamma)
        out = {}
        for k in x.floats:
            deltas = [(_work(m[k]) - _work(base[k])).reshape(-1) for m in x.models]
            out[k] = gta_tensor(method, base[k], deltas, x.weight, x.density, x.gamma,
                                stream_seeds(int(p.get("seed", 0)), n, k), bool(p.get("normalize", def_norm)),
                                p.get("rescale", def_rescale), x.lam, bounds, p.get("impl"), p.get("tie_break", "sort"),
                                per_model(p.get("epsilon", 0.15), n, "epsilon"))
        return out

    return run


def _pcb(x: Inputs) -> dict[str, torch.Tensor]:
    tvs = task_vectors(x.base, x.models)
    clip, out = x.params.get("clip", 1e-4), {}
    if x.params.get("trim_scope", "tensor") == "model":
        merged = pcb_merge(torch.stack([torch.cat([tv[k].reshape(-1) for k in x.floats]) for tv in tvs]),
                           x.density[0], clip)
        for k, part in zip(x.floats, merged.split([x.base[k].numel() for k in x.floats]), strict=True):
            out[k] = (_work(x.base[k]) + x.lam * part.reshape(x.base[k].shape)).to(x.base[k].dtype)
        return out
    for k in x.floats:
        merged = pcb_merge(torch.stack([tv[k].reshape(-1) for tv in tvs]), x.density[0], clip)
        out[k] = (_work(x.base[k]) + x.lam * merged.reshape(x.base[k].shape)).to(x.base[k].dtype)
    return out


def _fisher(x: Inputs) -> dict[str, torch.Tensor]:
    fishers = x.params.get("fishers")
    if fishers is None or len(fishers) != len(x.models):
        raise MergeError("fisher merging needs fishers=[one diagonal Fisher dict per model]")
    floor = float(x.params.get("fisher_floor", 1e-6))
    out = {}
    for k in x.floats:
        if all(k in f for f in fishers):
            fw = [w * _work(f[k]).clamp(min=floor) for w, f in zip(x.weight, fishers, strict=True)]
            out[k] = (sum(f * _work(m[k]) for f, m in zip(fw, x.models, strict=True)) / sum(fw)).to(x.ref[k].dtype)
        else:  # no Fisher for this tensor (e.g. frozen): weighted average
            out[k] = (sum(w * _work(m[k]) for w, m in zip(x.weight, x.models, strict=True)) / sum(x.weight)).to(x.ref[k].dtype)
    return out


def _sce(x: Inputs) -> dict[str, torch.Tensor]:
    topk = float(x.params.get("select_topk", 1.0))
    return {k: sce_tensor(x.base[k], [m[k] for m in x.models], topk) for k in x.floats}


def _nuslerp(x: Inputs) -> dict[str, torch.Tensor]:
    w0, w1 = x.weight
    t = 0.5 if abs(w0 + w1) < 1e-6 else w1 / (w0 + w1)
    row, flat = bool(x.params.get("nuslerp_row_wise", False)), bool(x.params.get("nuslerp_flatten", True))
    out = {}
    for k in x.floats:
        a, b = x.models[0][k], x.models[1][k]
        if x.base is None:
            out[k] = nuslerp_tensor(t, a, b, row, flat)
        else:
            base = _work(x.base[k])
            out[k] = (base + nuslerp_tensor(t, _work(a) - base, _work(b) - base, row, flat)).to(x.base[k].dtype)
    return out


def _karcher(x: Inputs) -> dict[str, torch.Tensor]:
    it, tol = int(x.params.get("max_iter", 10)), float(x.params.get("tol", 1e-5))
    return {k: karcher_tensor([m[k] for m in x.models], it, tol) for k in x.floats}


def _arcee_fusion(x: Inputs) -> dict[str, torch.Tensor]:
    return {k: arcee_fusion_tensor(x.base[k], x.models[0][k]) for k in x.floats}


def _model_stock(x: Inputs) -> dict[str, torch.Tensor]:
    return {k: model_stock_tensor(x.base[k], [m[k] for m in x.models], bool(x.params.get("filter_wise", False)))
            for k in x.floats}


def _slerp(x: Inputs) -> dict[str, torch.Tensor]:
    t = float(x.params.get("t", 0.5))
    return {k: slerp_tensor(t, x.base[k], x.models[0][k]) for k in x.floats}


def _passthrough(x: Inputs) -> dict[str, torch.Tensor]:
    """mergekit's ``passthrough``: the one model's tensor, times ``scale`` if given."""
    m, scale = x.models[0], x.params.get("scale")
    if scale is None:
        return {k: m[k].clone() for k in x.floats}
    s = per_model(scale, 1, "scale")[0]
    return {k: m[k] * s for k in x.floats}


def _layer_swap(x: Inputs) -> dict[str, torch.Tensor]:
    p = x.params
    pattern = p.get("layer_pattern", LAYER_PATTERN)
    layers = {k: layer_of(k, pattern) for k in x.floats}
    found = [v for v in layers.values() if v is not None]
    n_layers = p.get("n_layers") or (max(found) + 1 if found else 0)
    if not n_layers:
        raise MergeError(f"no layer index found in tensor names with pattern {pattern!r}")
    share = swap_weights(int(n_layers), int(p.get("bottom", 1)), int(p.get("top", 1)), int(p.get("blend", 0)))
    host, donor = x.models
    return {k: torch.lerp(_work(host[k]), _work(donor[k]), 0.0 if layers[k] is None else share[layers[k]]).to(x.ref[k].dtype)
            for k in x.floats}


_GTA_PARAMS = ("weight", "normalize", "lambda", "int8_mask")
_TRIM_PARAMS = ("density", "trim_scope", "tie_break", "rescale")
#: Every merge method by name. ``impl`` (the kernel path) is accepted by every method.
REGISTRY: dict[str, MergeMethod] = {m.name: m for m in [
    MergeMethod("linear", ("weight", "normalize"), False, _linear, doc="Σwθ/Σw; base unused"),
    MergeMethod("task_arithmetic", _GTA_PARAMS, True, _gta("task_arithmetic")),
    MergeMethod("ties", (*_GTA_PARAMS, *_TRIM_PARAMS), True, _gta("ties")),
    MergeMethod("dare_linear", (*_GTA_PARAMS, "density", "rescale", "seed"), True, _gta("dare_linear")),
    MergeMethod("dare_ties", (*_GTA_PARAMS, "density", "rescale", "seed"), True, _gta("dare_ties")),
    MergeMethod("breadcrumbs", (*_GTA_PARAMS, *_TRIM_PARAMS, "gamma"), True, _gta("breadcrumbs")),
    MergeMethod("breadcrumbs_ties", (*_GTA_PARAMS, *_TRIM_PARAMS, "gamma"), True, _gta("breadcrumbs_ties")),
    MergeMethod("della", (*_GTA_PARAMS, "density", "epsilon", "rescale", "seed"), True, _gta("della")),
    MergeMethod("della_linear", (*_GTA_PARAMS, "density", "epsilon", "rescale", "seed"), True, _gta("della_linear")),
    MergeMethod("pcb", ("density", "lambda", "trim_scope", "clip"), True, _pcb, doc="density = kept ratio r"),
    MergeMethod("sce", ("select_topk", "int8_mask"), True, _sce),
    MergeMethod("fisher", ("weight", "fishers", "fisher_floor"), False, _fisher,
                doc="fishers: one diagonal Fisher dict per model"),
    MergeMethod("model_stock", ("filter_wise",), True, _model_stock, models=(2, None)),
    MergeMethod("karcher", ("max_iter", "tol"), False, _karcher, doc="base unused"),
    MergeMethod("arcee_fusion", (), True, _arcee_fusion, models=(1, 1), doc="the base and ONE model"),
    MergeMethod("slerp", ("t",), True, _slerp, models=(1, 1), doc="the base and ONE model"),
    MergeMethod("nuslerp", ("weight", "nuslerp_row_wise", "nuslerp_flatten"), False, _nuslerp, models=(2, 2),
                doc="two models, t = w₂/(w₁+w₂); with a base, their task vectors"),
    MergeMethod("passthrough", ("scale",), False, _passthrough, models=(1, 1),
                doc="ONE model, copied (times scale); with slices, a frankenmerge"),
    MergeMethod("layer_swap", ("bottom", "top", "blend", "layer_pattern", "n_layers"), False, _layer_swap,
                models=(2, 2), doc="(host, donor)"),
]}
METHODS = tuple(REGISTRY)
NEEDS_BASE = {name for name, m in REGISTRY.items() if m.needs_base}


def _check_params(spec: MergeMethod, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with ``lam`` spelled ``lambda``; raises one line naming the method's parameters."""
    params = dict(params)
    if "lam" in params:
        if "lambda" in params:
            raise MergeError("pass lambda once: as lam= or as **{'lambda': x}, not both")
        params["lambda"] = params.pop("lam")
    bad = sorted(set(params) - set(spec.params) - {"impl"})
    if bad:
        raise MergeError(f"{spec.name!r} does not take {', '.join(bad)}; its parameters are: "
                         f"{', '.join(spec.params) or 'none'} (and impl)")
    return params


# ---------------------------------------------------------------- merge()
def merge(method: str, base: StateDict | None, models: Sequence[StateDict], **params: Any) -> dict[str, torch.Tensor]:
    """Merge ``models`` (state dicts of fine-tunes of ``base``) with ``method``; see the module docstring.

    Methods (:data:`REGISTRY` lists each one's parameters): ``linear`` (Σwθ/Σw; base unused),
    ``task_arithmetic``, ``ties``, ``dare_linear``, ``dare_ties``, ``breadcrumbs``,
    ``breadcrumbs_ties``, ``della``, ``della_linear`` (``epsilon``; mergekit's generalized task
    arithmetic), ``pcb`` (``density`` = kept
    ratio r, ``lambda``), ``sce`` (``select_topk``), ``fisher`` (``fishers``: one diagonal
    Fisher dict per model, ``weight`` = λᵢ), ``model_stock`` (≥ 2 models), ``karcher`` (the
    Karcher mean of directions; base unused), ``slerp`` (one model, ``t``), ``nuslerp`` (two
    models, optional base), ``arcee_fusion`` (one model), ``passthrough`` (one model, optional
    ``scale``), ``layer_swap`` (two models: the host
    gives the middle layers and everything outside layers, the donor its ``bottom`` and
    ``top`` layers, ``blend``). A parameter the method does not take is an error naming the
    ones it does. Non-floating tensors (counters, ids) are copied from the base (or the first
    model).
    """
    spec = REGISTRY.get(method)
    if spec is None:
        raise MergeError(f"unknown merge method {method!r}; choose one of {', '.join(METHODS)}")
    params = check_parameters(_check_params(spec, params))
    if spec.needs_base and base is None:
        raise MergeError(f"merge method {method!r} needs a base model")
    models = list(models)
    names = check_compatible(base, models)
    lo, hi = spec.models
    if len(models) < lo or (hi is not None and len(models) > hi):
        want = f"exactly {lo}" if lo == hi else f"at least {lo}"
        raise MergeError(f"{method!r} takes {want} model(s) ({spec.doc or 'besides the base'}); got {len(models)}")
    ref = base if base is not None else models[0]
    n = len(models)
    density = per_model(params.get("density", 1.0 if method != "pcb" else 0.1), n, "density")
    check_density(density)
    floats = [k for k in names if ref[k].is_floating_point()]
    x = Inputs(base, models, ref, floats, per_model(params.get("weight", 1.0), n, "weight"), density,
               per_model(params.get("gamma", 0.01), n, "gamma"), float(params.get("lambda", 1.0)), params)
    out = {k: ref[k].clone() for k in names if k not in floats}
    out.update(spec.run(x))
    return {k: out[k] for k in names}


# ---------------------------------------------------------------- soups
class Soup(NamedTuple):
    state: dict[str, torch.Tensor]
    ingredients: list[int]
    score: float


def uniform_soup(models: Sequence[StateDict]) -> dict[str, torch.Tensor]:
    """The mean of the models' parameters (Wortsman et al. 2022, "uniform soup")."""
    return merge("linear", None, models)


def greedy_soup(
    models: Sequence[StateDict], evaluate: Callable[[StateDict], float], scores: Sequence[float] | None = None
) -> Soup:
    """Greedy soup (Wortsman et al. 2022, Recipe 1): rank by held-out score (higher is better),
    start from the best, add each next model if the uniform average with it strictly
    improves the held-out score. ``scores``: the individual scores, if already known."""
    scores = [float(evaluate(m)) for m in models] if scores is None else [float(s) for s in scores]
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    kept, best = [order[0]], scores[order[0]]
    soup = {k: v.clone() for k, v in models[order[0]].items()}
    for i in order[1:]:
        cand = merge("linear", None, [models[j] for j in kept + [i]])
        s = float(evaluate(cand))
        if s > best:
            kept, best, soup = kept + [i], s, cand
    return Soup(soup, kept, best)
