"""Checks of merge parameters and tensors before a merge writes anything.

``check_parameters(params)`` returns the parameters with every number parsed and checked
against its range (a weight must be finite, SLERP's ``t`` lies in [0, 1], DARE's seed is a
non-negative int, ...), raising one :class:`MergeError` that names the parameter, the value
and the range. ``check_finite`` rejects a tensor that holds NaN or inf.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

import torch

INF = math.inf


class MergeError(ValueError):
    """A merge that cannot run: names, shapes, parameters or inputs do not fit."""


#: name -> (low, high, low included, high included); per-model ones may be lists.
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "weight": (-INF, INF, False, False),
    "density": (0.0, 1.0, False, True),        # fraction kept; DARE drops 1 - density
    "gamma": (0.0, 1.0, True, False),          # Breadcrumbs' outlier fraction
    "lambda": (-INF, INF, False, False),
    "lam": (-INF, INF, False, False),
    "t": (0.0, 1.0, True, True),               # SLERP: 0 is the base, 1 the model
    "clip": (0.0, 0.5, True, False),           # PCB's quantile clip on each side
    "fisher_floor": (0.0, INF, False, False),
    "epsilon": (0.0, 1.0, True, False),        # DELLA's spread of keep probabilities
    "scale": (-INF, INF, False, False),        # passthrough's factor
    "select_topk": (0.0, 1.0, False, True),    # SCE's kept fraction of coordinates
}
INTEGERS = ("seed", "bottom", "top", "blend")  # non-negative
BOOLS = ("normalize", "filter_wise", "int8_mask")
CHOICES = {"trim_scope": ("tensor", "model"), "tie_break": ("sort", "index"),
           "rescale": (True, False, "inverse")}


def number(value: Any, name: str) -> float:
    """``value`` as a finite float; NumPy scalars and numeric text (YAML reads ``1e-3`` as
    text) are accepted."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):  # NumPy scalars are Real
        raise MergeError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise MergeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise MergeError(f"{name} must be a finite number, got {value!r}")
    return x


def _in_range(x: float, name: str, shown: Any) -> float:
    low, high, low_in, high_in = RANGES[name]
    if x < low or x > high or (x == low and not low_in) or (x == high and not high_in):
        interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        raise MergeError(f"{name} must be in {interval}, got {shown!r}")
    return x


def check_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters with numbers parsed and checked; unknown names are left to the method."""
    out = dict(params)
    for name in RANGES:
        if name not in params:
            continue
        value = params[name]
        if isinstance(value, (list, tuple)):
            out[name] = [_in_range(number(v, f"{name} of model {i + 1}"), name, v) for i, v in enumerate(value)]
        else:
            out[name] = _in_range(number(value, name), name, value)
    for name in INTEGERS:
        if name in params:
            x = number(params[name], name)
            if x != int(x) or x < 0:
                raise MergeError(f"{name} must be a non-negative integer, got {params[name]!r}")
            out[name] = int(x)
    for name in BOOLS:
        if name in params and not isinstance(params[name], bool):
            raise MergeError(f"{name} must be true or false, got {params[name]!r}")
    for name, allowed in CHOICES.items():
        if name in params and params[name] not in allowed:
            raise MergeError(f"{name} must be one of {', '.join(map(str, allowed))}, got {params[name]!r}")
    if "layer_pattern" in params:
        try:
            re.compile(params["layer_pattern"])
        except (re.error, TypeError) as exc:
            raise MergeError(f"layer_pattern {params['layer_pattern']!r} is not a regular expression: {exc}") from None
    return out


def check_finite(t: torch.Tensor, where: str) -> torch.Tensor:
    """``t`` unchanged, or :class:`MergeError` if a floating tensor holds NaN or inf."""
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise MergeError(f"{where} holds {bad} NaN or inf value(s) of {t.numel()}: fix or re-export it")
    return t
