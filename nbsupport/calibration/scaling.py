"""Post-hoc calibration: temperature scaling and the baselines it is compared with.

- :func:`fit_temperature` (Guo et al. 2017, §4.2): ``T* = argmin_T NLL(softmax(z/T), y)``, fitted
  in ``log T`` so T stays positive; LBFGS with a strong-Wolfe line search from ``T = 1.5``, and a
  bounded Brent search (bracketing) on ``log T`` when LBFGS fails or leaves the bounds. The NLL is
  quasi-convex in ``log T`` (convex in ``1/T``), so the bracket finds the optimum.
- :class:`VectorScaling` (Guo et al. 2017): per-class ``z·w + b``, fitted by NLL with LBFGS.
- :class:`HistogramBinning` (Zadrozny & Elkan 2001) and :class:`IsotonicCalibration`
  (Zadrozny & Elkan 2002, sklearn's ``IsotonicRegression``), one-vs-rest per class and then
  renormalized, as in Guo et al.'s multiclass experiments.

Every calibrator has ``fit(logits, labels) -> self`` and ``predict_proba(logits) -> probs``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from nbsupport.calibration.metrics import as_tensor
from nbsupport.kernels.calibration_stats import calibration_stats, check_inputs


def _prepare(logits, labels) -> tuple[torch.Tensor, torch.Tensor]:
    z, y = as_tensor(logits, "logits"), as_tensor(labels, "labels")
    check_inputs(z, y, 1.0)
    if not torch.isfinite(z).all():
        raise ValueError("logits contain NaN or inf")
    return z, y


def _mean_nll(z: torch.Tensor, y: torch.Tensor, t: float) -> float:
    return float(calibration_stats(z, y, t).nll.double().mean())


def fit_temperature(
    logits,
    labels,
    init: float = 1.5,
    bounds: tuple[float, float] = (0.05, 20.0),
    max_iter: int = 100,
) -> float:
    """The temperature minimizing the NLL of ``softmax(logits / T)`` on ``labels``.

    Fitted in ``log T`` by LBFGS; if LBFGS yields a non-finite value, leaves ``bounds`` or does
    worse than its start, a bounded Brent search over ``log T`` takes over. The result is always
    a finite float in ``bounds``; a warning says when it sits at a bound (the NLL keeps falling
    beyond it: e.g. separable data with ``T -> 0``, or constant logits).
    """
    lo, hi = bounds
    if not (0 < lo < hi < math.inf):
        raise ValueError(f"bounds must satisfy 0 < lo < hi < inf, got {bounds}")
    if not (lo <= init <= hi):
        raise ValueError(f"init={init} must lie within bounds {bounds}")
    z, y = _prepare(logits, labels)
    z64 = z.detach().double()
    log_lo, log_hi = math.log(lo), math.log(hi)
    log_t = torch.tensor(math.log(init), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z64 * torch.exp(-log_t), y)
        loss.backward()
        return loss

    start = _mean_nll(z, y, init)
    try:
        opt.step(closure)
        found = float(log_t.detach())
    except (RuntimeError, ValueError):
        found = math.nan
    ok = math.isfinite(found) and log_lo <= found <= log_hi and _mean_nll(z, y, math.exp(found)) <= start + 1e-12
    if not ok:  # bracketing fallback: Brent's method bounded to [log lo, log hi]
        res = minimize_scalar(lambda s: _mean_nll(z, y, math.exp(s)), bounds=(log_lo, log_hi),
                              method="bounded", options={"xatol": 1e-6})
        found = min(max(float(res.x), log_lo), log_hi)
    # the NLL is quasi-convex in log T: a bound doing at least as well means the optimum is there
    # or beyond (LBFGS also stalls on such flat tails)
    best = _mean_nll(z, y, math.exp(found))
    for bound in (lo, hi):
        if abs(found - math.log(bound)) < 1e-3 or _mean_nll(z, y, bound) <= best:
            warnings.warn(f"fit_temperature: the optimum sits at the bound T={bound:.4g} of {bounds}; "
                          "the NLL does not increase beyond it", RuntimeWarning, stacklevel=2)
            return float(bound)
    t = math.exp(found)
    return t


class TemperatureScaling:
    """``softmax(z / T)`` with ``T`` from :func:`fit_temperature`."""

    def __init__(self, **fit_kwargs) -> None:
        self.fit_kwargs = fit_kwargs
        self.temperature = 1.0

    def fit(self, logits, labels) -> TemperatureScaling:
        self.temperature = fit_temperature(logits, labels, **self.fit_kwargs)
        return self

    def predict_proba(self, logits) -> torch.Tensor:
        return torch.softmax(as_tensor(logits, "logits").double() / self.temperature, dim=1)


class VectorScaling:
    """``softmax(z·w + b)`` with per-class ``w``, ``b`` fitted by NLL (Guo et al. 2017)."""

    def __init__(self, max_iter: int = 200) -> None:
        self.max_iter = max_iter
        self.w: torch.Tensor | None = None
        self.b: torch.Tensor | None = None

    def fit(self, logits, labels) -> VectorScaling:
        z, y = _prepare(logits, labels)
        z = z.detach().double()
        c = z.shape[1]
        w = torch.ones(c, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(z * w + b, y)
            loss.backward()
            return loss

        opt.step(closure)
        if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
            raise RuntimeError("VectorScaling: the fit diverged (non-finite parameters)")
        self.w, self.b = w.detach(), b.detach()
        return self

    def predict_proba(self, logits) -> torch.Tensor:
        if self.w is None:
            raise RuntimeError("VectorScaling: call fit first")
        return torch.softmax(as_tensor(logits, "logits").double() * self.w + self.b, dim=1)


def _normalize(p: np.ndarray) -> torch.Tensor:
    s = p.sum(1, keepdims=True)
    p = np.where(s > 0, p / np.where(s > 0, s, 1), 1.0 / p.shape[1])
    return torch.as_tensor(p)


class HistogramBinning:
    """One-vs-rest histogram binning: each ``p_k`` replaced by the frequency of class k in its
    equal-width bin on the calibration split (an empty bin keeps its midpoint), then renormalized."""

    def __init__(self, n_bins: int = 15) -> None:
        self.n_bins = n_bins
        self.table: np.ndarray | None = None

    def _bins(self, p: np.ndarray) -> np.ndarray:
        return np.clip((p * self.n_bins).astype(np.int64), 0, self.n_bins - 1)

    def fit(self, logits, labels) -> HistogramBinning:
        z, y = _prepare(logits, labels)
        p = torch.softmax(z.double(), 1).numpy()
        y = y.numpy()
        c = p.shape[1]
        mid = (np.arange(self.n_bins) + 0.5) / self.n_bins
        self.table = np.empty((c, self.n_bins))
        bins = self._bins(p)
        for k in range(c):
            hits = np.bincount(bins[:, k], weights=(y == k).astype(float), minlength=self.n_bins)
            count = np.bincount(bins[:, k], minlength=self.n_bins)
            self.table[k] = np.where(count > 0, hits / np.maximum(count, 1), mid)
        return self

    def predict_proba(self, logits) -> torch.Tensor:
        if self.table is None:
            raise RuntimeError("HistogramBinning: call fit first")
        p = torch.softmax(as_tensor(logits, "logits").double(), 1).numpy()
        bins = self._bins(p)
        return _normalize(np.take_along_axis(self.table.T, bins, 0))


class IsotonicCalibration:
    """One-vs-rest isotonic regression of ``[y = k]`` on ``p_k`` (sklearn), then renormalized."""

    def __init__(self) -> None:
        self.models: list | None = None

    def fit(self, logits, labels) -> IsotonicCalibration:
        from sklearn.isotonic import IsotonicRegression

        z, y = _prepare(logits, labels)
        p = torch.softmax(z.double(), 1).numpy()
        y = y.numpy()
        self.models = [IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, k], y == k)
                       for k in range(p.shape[1])]
        return self

    def predict_proba(self, logits) -> torch.Tensor:
        if self.models is None:
            raise RuntimeError("IsotonicCalibration: call fit first")
        p = torch.softmax(as_tensor(logits, "logits").double(), 1).numpy()
        return _normalize(np.stack([m.predict(p[:, k]) for k, m in enumerate(self.models)], 1))
