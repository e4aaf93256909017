"""Learning-rate schedules as multipliers of the optimizer's base learning rate.

Every constructor returns a :class:`Schedule`: ``s(step)`` gives the multiplier for an int
(a float) or an array of steps (a float64 array), ``s.lambda_lr(optimizer)`` gives a
``torch.optim.lr_scheduler.LambdaLR``, and ``repr(s)`` reads like the call that built it.
Steps count optimizer updates from 0; ``LambdaLR`` evaluates step 0 before the first update.

Notation (as in docs/bibliography.md, warmup): t step, W warmup steps, T total steps,
p = (t - W)/(T - W), m the minimum-LR ratio.

Conventions, and where they match the libraries people use:

- ``constant``, ``linear``, ``cosine``, ``inverse_sqrt`` and ``wsd`` match transformers'
  ``get_constant_schedule_with_warmup``, ``get_linear_schedule_with_warmup``,
  ``get_cosine_schedule_with_warmup`` / ``get_cosine_with_min_lr_schedule_with_warmup``,
  ``get_inverse_sqrt_schedule`` and ``get_wsd_schedule`` at every step 0..T (the tests check
  10 000 steps to 1e-12). Warmup is linear from 0 (``t/W``), except in ``wsd``, which warms up
  from ``m`` as transformers does. Past ``T`` every schedule holds its final value;
  transformers' cosine does not clip its progress and rises again after ``T``.
- ``restarts`` matches torch's ``CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)`` with
  ``eta_min = m·base_lr``.
- torch ``LinearLR`` cannot start at 0 (``start_factor > 0``) and reaches its end one step
  later: ``LinearLR(start_factor=1/W, total_iters=W-1)`` gives ``(t+1)/W``, our warmup at t+1.
- timm's ``CosineLRScheduler`` (``warmup_prefix=False``, its default) runs the cosine clock
  from step 0, not from the end of warmup, so the LR drops to ``½(1+cos(πW/T))`` when warmup
  ends and never reaches the peak; here the cosine starts at the end of warmup (p above), as
  in timm with ``warmup_prefix=True`` and ``t_initial = T - W``. ``wsd`` also matches timm's
  ``WSDLRScheduler`` (``warmup_t=W``, ``t_initial=T-W``, ``warmup_lr_init=m``) and ``cosine``
  matches optax's ``warmup_cosine_decay_schedule`` (whose ``decay_steps`` is T, warmup
  included); notebook warmup/01 runs these comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

__all__ = [
    "DECAY_SHAPES", "WARMUP_SHAPES", "Schedule", "constant", "cosine", "inverse_sqrt", "linear",
    "power", "restarts", "rewarm", "wsd",
]

WARMUP_SHAPES = ("linear", "cosine", "1-sqrt")
_TABLE_MAX = 10_000_000  # lambda_lr tabulates schedules up to this many steps
DECAY_SHAPES = ("linear", "cosine", "1-sqrt", "exponential")


class Schedule:
    """A learning-rate multiplier over optimizer steps.

    ``s(step)`` accepts an int (returns a float) or anything array-like (returns a float64
    array); negative steps raise ``ValueError``. ``s.total`` is the schedule's length (None
    for open-ended schedules such as ``inverse_sqrt``); ``s.params`` the arguments it was
    built with.
    """

    def __init__(self, name: str, fn: Callable[[np.ndarray], np.ndarray], params: dict[str, Any],
                 total: int | None = None) -> None:
        self.name = name
        self.params = dict(params)
        self.total = total
        self._fn = fn
        self._table: np.ndarray | None = None

    def __call__(self, step: Any) -> Any:
        if isinstance(step, torch.Tensor):
            step = step.detach().cpu().numpy()
        arr = np.asarray(step, dtype=np.float64)
        if np.isnan(arr).any():
            raise ValueError(f"{self.name}: steps must be numbers, got NaN")
        if (arr < 0).any():
            raise ValueError(f"{self.name}: steps must be >= 0, got {arr.min():g}")
        out = np.asarray(self._fn(arr), dtype=np.float64)
        return float(out) if out.ndim == 0 else out

    def lambda_lr(self, optimizer: torch.optim.Optimizer, last_epoch: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
        """A ``LambdaLR`` that multiplies each param group's initial LR by this schedule."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self._lambda, last_epoch=last_epoch)

    def _lambda(self, step: int) -> float:
        # LambdaLR calls this once per step: read a table of the whole schedule (built once,
        # vectorized) instead of paying numpy's per-call overhead on a scalar
        if self._table is None and self.total is not None and self.total <= _TABLE_MAX:
            self._table = self(np.arange(self.total + 1))
        if self._table is not None and isinstance(step, Integral) and 0 <= step < len(self._table):
            return float(self._table[step])
        return self(step)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.name}({args})"


def _fmt(v: Any) -> str:
    """A parameter as it reads in a call: floats in ``g`` format (``1000.0`` reads ``1000``), the rest by repr."""
    return f"{v:g}" if isinstance(v, float) else repr(v)


# ---------------------------------------------------------------- validation


def _steps(name: str, value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name}: {what} must be an int number of steps, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: {what} must be >= {minimum}, got {value}")
    return int(value)


def _ratio(name: str, value: Any, what: str = "min_ratio") -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: {what} must be a number in [0, 1], got {value!r}")
    return float(value)


def _positive(name: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not float(value) > 0 or not math.isfinite(value):
        raise ValueError(f"{name}: {what} must be a positive number, got {value!r}")
    return float(value)


def _warmup_total(name: str, warmup: Any, total: Any) -> tuple[int, int]:
    warmup = _steps(name, warmup, "warmup")
    total = _steps(name, total, "total", minimum=1)
    if warmup > total:
        raise ValueError(f"{name}: warmup ({warmup} steps) is longer than the total ({total} steps)")
    return warmup, total


def _choice(name: str, value: str, options: tuple[str, ...], what: str) -> str:
    if value not in options:
        raise ValueError(f"{name}: unknown {what} {value!r}; choose one of {', '.join(options)}")
    return value


def _decay_steps(name: str, decay: Any, total: int) -> int:
    """``decay`` as an int number of steps or a float fraction of ``total`` (as sklearn's test_size)."""
    if isinstance(decay, bool) or not isinstance(decay, Real):
        raise TypeError(f"{name}: decay must be an int (steps) or a float fraction of total, got {decay!r}")
    if isinstance(decay, Integral):
        steps = int(decay)
        if not 0 <= steps <= total:
            raise ValueError(f"{name}: decay must be between 0 and total ({total}) steps, got {steps}")
        return steps
    if not 0.0 <= float(decay) <= 1.0:
        raise ValueError(f"{name}: a float decay is a fraction of total and must be in [0, 1], got {decay}")
    return int(round(float(decay) * total))


# ---------------------------------------------------------------- shapes


def _warm(t: np.ndarray, warmup: int, shape: str = "linear") -> np.ndarray:
    """Warmup progress g(t/W) in [0, 1] (transformers' warmup types)."""
    x = np.clip(t / max(1, warmup), 0.0, 1.0)
    if shape == "linear":
        return x
    if shape == "cosine":
        return 0.5 * (1.0 - np.cos(np.pi * x))
    return 1.0 - np.sqrt(1.0 - x)


def _decay(q: np.ndarray, shape: str, decay_steps: int = 1, half_life: float = 1.0) -> np.ndarray:
    """Decay factor h(q) for q in [0, 1] the fraction of the decay done: 1 at q = 0."""
    q = np.clip(q, 0.0, 1.0)
    if shape == "linear":
        return 1.0 - q
    if shape == "cosine":
        return 0.5 * (1.0 + np.cos(np.pi * q))
    if shape == "1-sqrt":
        return 1.0 - np.sqrt(q)
    return 0.5 ** (q * decay_steps / half_life)


# ---------------------------------------------------------------- schedules


def constant(warmup: int = 0) -> Schedule:
    """Linear warmup ``t/W`` to 1, then 1 (transformers ``get_constant_schedule_with_warmup``)."""
    warmup = _steps("constant", warmup, "warmup")

    def fn(t: np.ndarray) -> np.ndarray:
        return np.where(t < warmup, t / max(1, warmup), 1.0)

    return Schedule("constant", fn, {"warmup": warmup})


def linear(warmup: int, total: int, min_ratio: float = 0.0) -> Schedule:
    """Linear warmup ``t/W``, then linear decay ``m + (1-m)·max(0, (T-t)/(T-W))``.

    With ``min_ratio=0`` this is transformers ``get_linear_schedule_with_warmup``.
    """
    warmup, total = _warmup_total("linear", warmup, total)
    m = _ratio("linear", min_ratio)

    def fn(t: np.ndarray) -> np.ndarray:
        down = np.maximum(0.0, (total - t) / max(1, total - warmup))
        return np.where(t < warmup, t / max(1, warmup), m + (1.0 - m) * down)

    return Schedule("linear", fn, {"warmup": warmup, "total": total, "min_ratio": m}, total)


def cosine(warmup: int, total: int, min_ratio: float = 0.0) -> Schedule:
    """Linear warmup ``t/W``, then ``m + (1-m)·½(1 + cos(π·p))``, p = (t-W)/(T-W), held at m after T.

    transformers ``get_cosine_schedule_with_warmup`` (m = 0, ``num_cycles=0.5``) and
    ``get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=m)`` for t <= T; torch
    ``CosineAnnealingLR(T_max=T, eta_min=m·lr)`` when W = 0. See the module docstring for
    timm's different clock.
    """
    warmup, total = _warmup_total("cosine", warmup, total)
    m = _ratio("cosine", min_ratio)

    def fn(t: np.ndarray) -> np.ndarray:
        p = np.minimum((t - warmup) / max(1, total - warmup), 1.0)
        return np.where(t < warmup, t / max(1, warmup), m + (1.0 - m) * 0.5 * (1.0 + np.cos(np.pi * p)))

    return Schedule("cosine", fn, {"warmup": warmup, "total": total, "min_ratio": m}, total)


def inverse_sqrt(warmup: int = 0, timescale: int | None = None) -> Schedule:
    """Linear warmup ``t/W``, then ``1/√((t + τ - W)/τ)``; τ defaults to W (10 000 if W = 0).

    transformers ``get_inverse_sqrt_schedule`` (from big_vision). Open-ended: ``total`` is None.
    """
    warmup = _steps("inverse_sqrt", warmup, "warmup")
    tau = (warmup or 10_000) if timescale is None else _steps("inverse_sqrt", timescale, "timescale", 1)

    def fn(t: np.ndarray) -> np.ndarray:
        after = 1.0 / np.sqrt(np.maximum(t + tau - warmup, tau) / tau)  # >= W here, so no clip bites
        return np.where(t < warmup, t / max(1, warmup), after)

    return Schedule("inverse_sqrt", fn, {"warmup": warmup, "timescale": tau})


def wsd(warmup: int, total: int, decay: int | float = 0.1, shape: str = "cosine",
        min_ratio: float = 0.0, warmup_shape: str = "linear", half_life: float | None = None) -> Schedule:
    """Warmup-Stable-Decay (MiniCPM, Hu et al. 2024; transformers ``get_wsd_schedule``).

    ``decay`` is an int number of decay steps D or a float fraction of ``total``; the stable
    phase is inferred, S = T - W - D. Warmup: ``m + (1-m)·g(t/W)`` (from m, as transformers);
    stable: 1; decay with q = (t - W - S)/D: ``m + (1-m)·h(q)``, h in linear ``1-q``, cosine
    ``½(1+cos πq)``, 1-sqrt ``1-√q`` (Hägele et al. 2024), exponential ``0.5^(q·D/half_life)``
    (MiniCPM; ``half_life`` in steps, default D/5, so the decay ends at m + (1-m)/32 and holds
    there); after the decay: the value at q = 1 (m for the first three shapes, as transformers).
    """
    warmup, total = _warmup_total("wsd", warmup, total)
    d = _decay_steps("wsd", decay, total)
    shape = _choice("wsd", shape, DECAY_SHAPES, "decay shape")
    warmup_shape = _choice("wsd", warmup_shape, WARMUP_SHAPES, "warmup shape")
    m = _ratio("wsd", min_ratio)
    stable = total - warmup - d
    if stable < 0:
        raise ValueError(f"wsd: warmup ({warmup}) + decay ({d}) steps are longer than the total ({total})")
    hl = max(d, 1) / 5.0 if half_life is None else _positive("wsd", half_life, "half_life")

    def fn(t: np.ndarray) -> np.ndarray:
        up = m + (1.0 - m) * _warm(t, warmup, warmup_shape)
        down = m + (1.0 - m) * _decay((t - warmup - stable) / max(1, d), shape, d, hl)
        return np.where(t < warmup, up, np.where(t < warmup + stable, 1.0, down))

    params = {"warmup": warmup, "total": total, "decay": d, "shape": shape, "min_ratio": m}
    if warmup_shape != "linear":
        params["warmup_shape"] = warmup_shape
    if shape == "exponential":
        params["half_life"] = hl
    return Schedule("wsd", fn, params, total)


def power(warmup: int, total: int, a: float = 4.6, b: float = -0.51, lr_max: float = 0.02,
          tokens_per_step: float = 1.0, decay: int | float = 0.0, shape: str = "exponential",
          min_ratio: float = 0.0) -> Schedule:
    """Power scheduler (Shen et al. 2024): ``lr(t) = min(lr_max, a·n^b)``, n = tokens seen.

    The paper's law is ``η = β·a·n^b`` with β the batch size; here β is folded into ``a``
    (the project's convention: one constant per setup). The multiplier is relative to
    ``lr_max`` (set the optimizer's LR to ``lr_max``):
    ``c(t) = min(1, a·(tokens_per_step·t)^b / lr_max)``. Warmup is linear to the curve,
    ``t/W·c(W)``; the last D steps (``decay``, int steps or float fraction of total) decay
    from ``c(T-D)`` by the WSD shape ``h`` to ``min_ratio·c(T-D)`` (the project's choice of
    final decay, not the paper's formula). The defaults a = 4.6, b = -0.51 are starting
    values for the paper's setting, not constants of a small model: fit a and b to your own
    best learning rates (warmup notebook 03 does).
    """
    warmup, total = _warmup_total("power", warmup, total)
    a = _positive("power", a, "a")
    if isinstance(b, bool) or not isinstance(b, Real) or not float(b) < 0:
        raise ValueError(f"power: the exponent b must be negative (LR falls with tokens), got {b!r}")
    b = float(b)
    lr_max = _positive("power", lr_max, "lr_max")
    c = _positive("power", tokens_per_step, "tokens_per_step")
    d = _decay_steps("power", decay, total)
    shape = _choice("power", shape, DECAY_SHAPES, "decay shape")
    m = _ratio("power", min_ratio)
    if warmup + d > total:
        raise ValueError(f"power: warmup ({warmup}) + decay ({d}) steps are longer than the total ({total})")
    start = total - d

    def curve(t: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.minimum(1.0, a * np.power(np.maximum(c * t, 0.0), b) / lr_max)

    def fn(t: np.ndarray) -> np.ndarray:
        top = curve(np.asarray(float(start)))
        down = top * (m + (1.0 - m) * _decay((t - start) / max(1, d), shape, d, max(d, 1) / 5.0))
        mid = curve(np.maximum(t, max(warmup, 1)))
        up = t / max(1, warmup) * curve(np.asarray(float(max(warmup, 1))))
        return np.where(t < warmup, up, np.where(t < start, mid, down))

    params = {"warmup": warmup, "total": total, "a": a, "b": b, "lr_max": lr_max,
              "tokens_per_step": c, "decay": d}
    if d:
        params.update(shape=shape, min_ratio=m)
    return Schedule("power", fn, params, total)


def rewarm(start: float | Schedule, warmup: int, total: int, peak: float = 1.0,
           end: float | None = None, shape: str = "cosine") -> Schedule:
    """Continue training on new data after a finished schedule (Gupta et al. 2023).

    ``start`` is the multiplier the previous schedule ended at (or that ``Schedule``, whose
    final value is used). Steps count from 0 on the new data: linear warmup from ``start`` to
    ``peak`` over W steps, then decay by ``shape`` (as in :func:`wsd`) from ``peak`` to
    ``end`` (default ``start``) at T. ``rewarm(s, 0, T, peak=s_end)`` is "no rewarm": constant
    at the old minimum. ``peak`` may exceed 1 (a higher LR than the first run's peak).
    """
    if isinstance(start, Schedule):
        if start.total is None:
            raise ValueError("rewarm: the previous schedule is open-ended; pass its final multiplier as a float")
        start_value = float(start(start.total))
    else:
        if isinstance(start, bool) or not isinstance(start, Real) or float(start) < 0:
            raise ValueError(f"rewarm: start must be a multiplier >= 0 or a Schedule, got {start!r}")
        start_value = float(start)
    warmup, total = _warmup_total("rewarm", warmup, total)
    peak = _positive("rewarm", peak, "peak")
    end_value = start_value if end is None else float(end)
    if not 0.0 <= end_value <= peak:
        raise ValueError(f"rewarm: end must be in [0, peak={peak:g}], got {end_value:g}")
    shape = _choice("rewarm", shape, DECAY_SHAPES, "decay shape")

    def fn(t: np.ndarray) -> np.ndarray:
        up = start_value + (peak - start_value) * t / max(1, warmup)
        down = end_value + (peak - end_value) * _decay((t - warmup) / max(1, total - warmup), shape,
                                                       total - warmup, max(total - warmup, 1) / 5.0)
        return np.where(t < warmup, up, down)

    params = {"start": start_value, "warmup": warmup, "total": total, "peak": peak, "end": end_value,
              "shape": shape}
    return Schedule("rewarm", fn, params, total)


def restarts(period: int, mult: int = 1, min_ratio: float = 0.0, warmup: int = 0) -> Schedule:
    """SGDR (Loshchilov & Hutter 2017): cosine from 1 to m over T_i steps, then restart.

    ``m + (1-m)·½(1 + cos(π·T_cur/T_i))`` with T_0 = ``period`` and T_i multiplied by ``mult``
    at each restart: torch ``CosineAnnealingWarmRestarts(T_0, T_mult, eta_min=m·lr)``. An
    optional linear warmup ``t/W`` comes first and the restart clock starts after it.
    """
    period = _steps("restarts", period, "period", minimum=1)
    mult = _steps("restarts", mult, "mult", minimum=1)
    m = _ratio("restarts", min_ratio)
    warmup = _steps("restarts", warmup, "warmup")

    def fn(t: np.ndarray) -> np.ndarray:
        s = np.maximum(t - warmup, 0.0)
        if mult == 1:
            t_cur, t_i = np.mod(s, period), np.full_like(s, float(period))
        else:
            t_cur, t_i = s.copy(), np.full_like(s, float(period))
            while (over := t_cur >= t_i).any():  # integer arithmetic, as torch's step() does
                t_cur = np.where(over, t_cur - t_i, t_cur)
                t_i = np.where(over, t_i * mult, t_i)
        cos = m + (1.0 - m) * 0.5 * (1.0 + np.cos(np.pi * t_cur / t_i))
        return np.where(t < warmup, t / max(1, warmup), cos)

    params = {"period": period, "mult": mult, "min_ratio": m}
    if warmup:
        params["warmup"] = warmup
    return Schedule("restarts", fn, params)
