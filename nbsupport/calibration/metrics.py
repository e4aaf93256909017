"""Calibration metrics from probabilities or logits: ECE (equal width / equal mass; l1, l2, max),
classwise ECE, NLL, Brier score and reliability tables.

Definitions (papers in docs/bibliography.md). With top-label confidence ``c_i = max_k p_ik``, correctness
``a_i = [argmax_k p_ik = y_i]`` and bins ``B_b`` over confidence:

- ``ECE = Σ_b (|B_b|/n)·|acc(B_b) - conf(B_b)|`` (Naeini et al. 2015; Guo et al. 2017, eq. 3);
  ``norm="max"`` is MCE, ``max_b |acc - conf|`` over non-empty bins; ``norm="l2"`` is RMSCE,
  ``sqrt(Σ_b (|B_b|/n)·(acc - conf)²)``. These equal torchmetrics'
  ``multiclass_calibration_error(..., norm=...)`` (bins ``linspace(0, 1, n_bins + 1)``, intervals
  ``[lo, hi)``) whenever no confidence is exactly 1, and netcal's ``ECE(bins, equal_intervals=True)``
  / ``MCE`` (Küppers et al. 2020), which define the same weighted gap. Where they differ:
  torchmetrics puts a confidence of exactly 1 into a hidden extra bin; here it lands in the last
  bin (and exactly 0 in the first).
- Equal-mass bins (``binning="mass"``): edges at the confidence quantiles, so each bin holds
  about ``n / n_bins`` samples (Nixon et al. 2019, "adaptive calibration error"; netcal's
  ``equal_intervals=False``).
- Classwise ECE (Nixon et al. 2019's static calibration error; Kull et al. 2019):
  ``(1/K) Σ_k Σ_b (|B_kb|/n)·|mean_{B_kb}[y = k] - mean_{B_kb} p_k|`` with bins over ``p_k``.
- NLL ``= -mean_i log p_{i y_i}``; Brier score ``= mean_i Σ_k (p_ik - [y_i = k])²`` (Brier 1950,
  the multiclass sum; it lies in [0, 2]).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import torch

from nbsupport.kernels.calibration_stats import calibration_stats, check_inputs, width_edges

Norm = Literal["l1", "l2", "max"]
Binning = Literal["width", "mass"]
NORMS = ("l1", "l2", "max")
BINNINGS = ("width", "mass")


def as_tensor(x, name: str) -> torch.Tensor:
    """Accept a torch tensor, numpy array or nested list."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        return torch.as_tensor(np.asarray(x))
    raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}")


def check_probs(probs: torch.Tensor, labels: torch.Tensor, atol: float = 1e-3) -> None:
    """Raise a clear ValueError unless ``probs`` is an (n, C) probability matrix matching ``labels``."""
    if probs.ndim != 2:
        raise ValueError(f"probs must be a 2-D (n, C) matrix; got shape {tuple(probs.shape)}")
    if not probs.is_floating_point():
        raise ValueError(f"probs must be floating point, got {probs.dtype}")
    if probs.shape[0] == 0 or probs.shape[1] == 0:
        raise ValueError(f"empty input: probs have shape {tuple(probs.shape)}")
    if not torch.isfinite(probs).all():
        raise ValueError("probs contain NaN or inf")
    if probs.min() < -atol or probs.max() > 1 + atol:
        raise ValueError(f"probs must lie in [0, 1]; found {float(probs.min()):.4g}..{float(probs.max()):.4g} "
                         "(pass from_logits=True for logits)")
    err = float((probs.sum(dim=1, dtype=torch.float64) - 1).abs().max())
    if err > atol:
        raise ValueError(f"rows of probs must sum to one (largest deviation {err:.3g} > {atol}); "
                         "pass from_logits=True for logits, or normalize")
    check_inputs(probs, labels, 1.0)  # labels: shape, dtype, range


def _check_options(n_bins: int, norm: str, binning: str) -> None:
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")


def mass_edges(confidence: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Equal-mass edges: the confidence quantiles, with the outer edges pinned to 0 and 1."""
    c = confidence.detach().double()
    q = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=c.device)
    if c.numel() > 1 << 24:  # torch.quantile's size limit
        edges = torch.as_tensor(np.quantile(c.cpu().numpy(), q.cpu().numpy()), device=c.device)
    else:
        edges = torch.quantile(c, q)
    edges[0], edges[-1] = 0.0, 1.0
    return edges.to(confidence.dtype)


def histogram(confidence: torch.Tensor, correct: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """(n_bins, 3) float64: count, Σ confidence, Σ correct per bin (first/last bin take the ends)."""
    c = confidence.detach().contiguous()
    bins = torch.bucketize(c, edges.to(c.dtype)[1:-1].contiguous(), right=True)
    nb = edges.numel() - 1
    return torch.stack([
        torch.bincount(bins, minlength=nb).double(),
        torch.bincount(bins, weights=c.double(), minlength=nb),
        torch.bincount(bins, weights=correct.double(), minlength=nb),
    ], 1)


def error_from_histogram(hist: torch.Tensor, norm: Norm = "l1") -> float:
    """ECE (l1), RMSCE (l2) or MCE (max) from a (n_bins, 3) count / Σconf / Σcorrect histogram."""
    count, sconf, scorr = hist.detach().double().cpu().unbind(1)  # (n_bins, 3): tiny, so on the CPU
    keep = count > 0
    n = count.sum()
    gap = (scorr[keep] - sconf[keep]) / count[keep]
    w = count[keep] / n
    if norm == "l1":
        return float((w * gap.abs()).sum())
    if norm == "l2":
        return float((w * gap**2).sum().sqrt())
    return float(gap.abs().max())


def _top_label(probs, labels, from_logits: bool, temperature: float, n_bins: int, binning: str,
               impl: str | None):
    """(confidence, correct, histogram) from probabilities or logits."""
    probs, labels = as_tensor(probs, "probs"), as_tensor(labels, "labels")
    if from_logits:
        stats = calibration_stats(probs, labels, temperature, n_bins=n_bins, impl=impl)
        conf, correct = stats.confidence, stats.correct
        hist = stats.histogram.cpu()  # one small copy; Σ confidence is finite iff every confidence is
        if not torch.isfinite(hist[:, 1]).all():
            raise ValueError("logits contain NaN or +inf (or a row of -inf): confidence is not finite")
    else:
        check_probs(probs, labels)
        conf, pred = probs.max(dim=1)
        correct = pred == labels
        hist = histogram(conf, correct, width_edges(n_bins, conf.dtype, conf.device))
    if binning == "mass":
        hist = histogram(conf, correct, mass_edges(conf, n_bins))
    return conf, correct, hist


def ece(
    probs,
    labels,
    n_bins: int = 15,
    norm: Norm = "l1",
    binning: Binning = "width",
    *,
    from_logits: bool = False,
    temperature: float = 1.0,
    impl: str | None = None,
) -> float:
    """Top-label expected calibration error of an (n, C) probability matrix (or logits).

    ``norm``: ``"l1"`` ECE, ``"l2"`` RMSCE, ``"max"`` MCE; ``binning``: ``"width"`` (equal-width,
    torchmetrics / netcal default) or ``"mass"`` (equal-mass). With ``from_logits=True`` the
    probabilities are ``softmax(logits / temperature)``, computed in one pass by the
    ``calibration_stats`` kernel. See the module docstring for the exact definition.
    """
    _check_options(n_bins, norm, binning)
    _, _, hist = _top_label(probs, labels, from_logits, temperature, n_bins, binning, impl)
    return error_from_histogram(hist, norm)


def reliability(probs, labels, n_bins: int = 15, binning: Binning = "width", *,
                from_logits: bool = False, temperature: float = 1.0) -> pd.DataFrame:
    """Per-bin table for reliability diagrams: ``lo``, ``hi``, ``confidence``, ``accuracy``, ``count``.

    Empty bins have NaN confidence and accuracy. ``gap = accuracy - confidence``.
    """
    _check_options(n_bins, "l1", binning)
    conf, _, hist = _top_label(probs, labels, from_logits, temperature, n_bins, binning, None)
    edges = (mass_edges(conf, n_bins) if binning == "mass" else width_edges(n_bins, torch.float64)).double()
    count, sconf, scorr = hist.double().unbind(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({
            "lo": edges[:-1].cpu().numpy(), "hi": edges[1:].cpu().numpy(),
            "confidence": (sconf / count).cpu().numpy(), "accuracy": (scorr / count).cpu().numpy(),
            "count": count.cpu().numpy().astype(np.int64),
        })
    table["gap"] = table["accuracy"] - table["confidence"]
    return table


def _probs(probs, labels, from_logits: bool, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    probs, labels = as_tensor(probs, "probs"), as_tensor(labels, "labels")
    if from_logits:
        check_inputs(probs, labels, temperature)
        if torch.isnan(probs).any() or torch.isposinf(probs).any():
            raise ValueError("logits contain NaN or +inf")
        return torch.softmax(probs / temperature, dim=1), labels
    check_probs(probs, labels)
    return probs, labels


def classwise_ece(probs, labels, n_bins: int = 15, norm: Norm = "l1", binning: Binning = "width", *,
                  from_logits: bool = False, temperature: float = 1.0) -> float:
    """Classwise ECE: the mean over classes of the ECE of ``p_k`` against ``[y = k]`` (bins over ``p_k``)."""
    _check_options(n_bins, norm, binning)
    p, y = _probs(probs, labels, from_logits, temperature)
    errors = []
    for k in range(p.shape[1]):
        pk = p[:, k]
        edges = mass_edges(pk, n_bins) if binning == "mass" else width_edges(n_bins, pk.dtype, pk.device)
        errors.append(error_from_histogram(histogram(pk, y == k, edges), norm))
    return float(np.mean(errors))


def nll(probs, labels, *, from_logits: bool = False, temperature: float = 1.0, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the labels (probabilities clipped at ``eps``)."""
    probs, labels = as_tensor(probs, "probs"), as_tensor(labels, "labels")
    if from_logits:
        stats = calibration_stats(probs, labels, temperature)
        if not torch.isfinite(stats.confidence).all():
            raise ValueError("logits contain NaN or +inf (or a row of -inf)")
        return float(stats.nll.double().mean())
    check_probs(probs, labels)
    picked = probs.gather(1, labels[:, None]).squeeze(1).double().clamp_min(eps)
    return float(-picked.log().mean())


def brier(probs, labels, *, from_logits: bool = False, temperature: float = 1.0) -> float:
    """Multiclass Brier score ``mean_i Σ_k (p_ik - [y_i = k])²`` (in [0, 2])."""
    p, y = _probs(probs, labels, from_logits, temperature)
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).to(torch.float64)
    return float(((p.double() - onehot) ** 2).sum(1).mean())


def ece_contributions(probs, labels, n_bins: int = 15) -> torch.Tensor:
    """Per-example terms ``e_i`` (float64, shape (n,)) whose mean is the equal-width l1 ECE.

    ``ECE = Σ_b (|B_b|/n)·|acc_b - conf_b| = (1/n)·Σ_i s_{b(i)}·(a_i - c_i)`` with
    ``s_b = sign(acc_b - conf_b)`` (Guo et al. 2017, eq. 3, rewritten as a mean over examples).
    Holding the bins and their signs fixed, the difference of two calibrators' contributions on
    the same examples is a paired per-example effect whose mean is their ECE difference; a
    bootstrap over examples of that mean is a linearization: it ignores how resampling moves the
    bin signs, and so the estimator's upward bias (Kumar et al. 2019).
    """
    _check_options(n_bins, "l1", "width")
    p, y = as_tensor(probs, "probs"), as_tensor(labels, "labels")
    check_probs(p, y)
    conf, pred = p.double().max(dim=1)
    correct = (pred == y).double()
    edges = width_edges(n_bins, torch.float64, conf.device)
    hist = histogram(conf, correct, edges)
    sign = torch.sign(hist[:, 2] - hist[:, 1])
    bins = torch.bucketize(conf, edges[1:-1].contiguous(), right=True)
    return sign[bins] * (correct - conf)


def nll_per_example(probs, labels, *, eps: float = 1e-12) -> torch.Tensor:
    """``-log p_{i y_i}`` per example (float64, probabilities clipped at ``eps``); its mean is :func:`nll`."""
    p, y = as_tensor(probs, "probs"), as_tensor(labels, "labels")
    check_probs(p, y)
    return -p.gather(1, y[:, None]).squeeze(1).double().clamp_min(eps).log()


def accuracy(probs, labels) -> float:
    """Top-1 accuracy (probabilities or logits: argmax is the same)."""
    probs, labels = as_tensor(probs, "probs"), as_tensor(labels, "labels")
    return float((probs.argmax(1) == labels).double().mean())
