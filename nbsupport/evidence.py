"""Verdicts for claims: the interval of a mean paired effect and what it says about a finding.

A finding is judged from *paired differences* (arm A minus arm B on the same seed, or per test
example / user on the same trained models). The two-sided ``level`` interval of their mean is

- Student-t, ``mean ± t_{(1+level)/2, n-1} · sd / √n``, for few units (seeds; ``n < 30``), and
- a paired percentile bootstrap of the mean (``n_boot`` resamples from a fixed generator, so the
  interval is reproducible) for many units (test examples, users).

The verdict compares the interval with the claim's direction and margin
(docs/evidence.md has the table):

========  ====================================  =====================================
expect    reproduced                            contradicted
========  ====================================  =====================================
``>``     lo > margin                           hi < 0
``<``     hi < -margin                          lo > 0
``≈``     -margin < lo and hi < margin          lo > margin or hi < -margin
========  ====================================  =====================================

Otherwise the claim is *inconclusive*; a failed premise makes it *not judged*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

VERDICTS = ("reproduced", "inconclusive", "contradicted", "not judged")
EXPECTS = {">": ">", "<": "<", "≈": "≈", "~": "≈", "~=": "≈", "==": "≈"}
METHODS = ("auto", "t", "bootstrap")
#: Below this many units the interval is Student-t, at or above it a bootstrap (method="auto").
BOOTSTRAP_FROM = 30
#: A claim keeps its paired effects themselves up to this many units (else only their summary).
MAX_STORED_EFFECTS = 100


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` paired effects and its two-sided ``level`` interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float
    n: int
    sd: float
    level: float
    method: str


def as_effect(effect: Any) -> np.ndarray:
    """The paired effects as a 1-D float64 array (lists, numpy arrays and torch tensors)."""
    if hasattr(effect, "detach"):
        effect = effect.detach().cpu().numpy()
    x = np.asarray(effect, dtype=np.float64)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise ValueError(f"claim: effect must be 1-D paired differences, got shape {x.shape}; "
                         "pass one value per seed (or per test example / user)")
    if x.size == 0:
        raise ValueError("claim: effect is empty; pass one paired difference per seed or example")
    return x


def interval(effect: Any, *, level: float = 0.9, method: str = "auto", n_boot: int = 4000,
             seed: int = 0) -> Interval:
    """Mean of the paired effects with its two-sided ``level`` interval.

    ``method="auto"`` uses Student-t below :data:`BOOTSTRAP_FROM` units and a percentile
    bootstrap (``n_boot`` resamples, generator seeded with ``seed``) from there on. One unit
    gives an unbounded t interval; identical effects give a zero-width one.
    """
    x = as_effect(effect)
    if not 0 < level < 1:
        raise ValueError(f"claim: level must lie in (0, 1), got {level}")
    if method not in METHODS:
        raise ValueError(f"claim: method {method!r} is not one of {', '.join(METHODS)}")
    if not np.isfinite(x).all():
        raise ValueError("claim: effect holds NaN or inf; a diverged arm needs a premise in "
                         "`requires` (the claim is then not judged), not a NaN effect")
    n, mean = x.size, float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    if method == "auto":
        method = "t" if n < BOOTSTRAP_FROM else "bootstrap"
    if method == "t" or n == 1:
        if n == 1:
            lo, hi = -math.inf, math.inf
        else:
            half = float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
            lo, hi = mean - half, mean + half
        return Interval(mean, lo, hi, n, sd, level, "t")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = x[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Interval(mean, float(lo), float(hi), n, sd, level, "bootstrap")


def verdict(lo: float, hi: float, expect: str = ">", margin: float = 0.0) -> str:
    """``reproduced``, ``contradicted`` or ``inconclusive`` for an interval (module table)."""
    expect = normalize_expect(expect)
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"claim: margin must be a finite number >= 0, got {margin}")
    if expect == ">":
        return "reproduced" if lo > margin else "contradicted" if hi < 0 else "inconclusive"
    if expect == "<":
        return "reproduced" if hi < -margin else "contradicted" if lo > 0 else "inconclusive"
    if margin == 0:
        raise ValueError("claim: an equivalence claim (expect='≈') needs a margin > 0, the tolerance")
    if -margin < lo and hi < margin:
        return "reproduced"
    return "contradicted" if lo > margin or hi < -margin else "inconclusive"


def normalize_expect(expect: str) -> str:
    if expect not in EXPECTS:
        raise ValueError(f"claim: expect={expect!r}; use '>' (A above B), '<' (A below B) or "
                         "'≈' (A matches B within the margin)")
    return EXPECTS[expect]


def failed_premises(requires: Mapping[str, Any] | None) -> list[str]:
    """The premises (statement -> truth) that do not hold."""
    if requires is None:
        return []
    if not isinstance(requires, Mapping):
        raise TypeError("claim: requires must be a dict {premise statement: bool}, e.g. "
                        "{'the CNN is above chance': acc > 0.2}")
    return [str(k) for k, v in requires.items() if not bool(v)]


def judge(effect: Any, *, expect: str = ">", margin: float = 0.0, requires: Mapping[str, Any] | None = None,
          level: float = 0.9, method: str = "auto") -> dict[str, Any]:
    """Interval and verdict of one claim as a JSON-ready dict (the fields the report shows),
    with the paired effects themselves when there are at most :data:`MAX_STORED_EFFECTS`."""
    expect = normalize_expect(expect)
    x = as_effect(effect)
    iv = interval(x, level=level, method=method)
    failed = failed_premises(requires)
    result = verdict(iv.lo, iv.hi, expect, margin)
    return {
        "verdict": "not judged" if failed else result,
        "reason": "premise failed: " + "; ".join(failed) if failed else "",
        "expect": expect, "margin": float(margin), "n": iv.n, "mean": iv.mean, "lo": iv.lo,
        "hi": iv.hi, "sd": iv.sd, "level": iv.level, "method": iv.method,
        "requires": {str(k): bool(v) for k, v in (requires or {}).items()},
        "effect": x.tolist() if x.size <= MAX_STORED_EFFECTS else None,
    }
