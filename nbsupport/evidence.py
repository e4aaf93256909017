"""Verdicts for claims: the interval of a mean paired effect, its power, and what it says.

**The unit is the trained model.** A claim about a training method or an arm is judged over
seeds: its effect is one paired difference per seed (arm A minus arm B, same seed), or a
seeds x units matrix (one row per seed, one column per test example / user / token, paired
across arms) whose rows are averaged first. The two-sided ``level`` interval of the mean over
seeds is Student-t, ``mean ± t_{(1+level)/2, n-1} · sd / √n``. Resampling examples instead
ignores the noise between trained models, the largest in these experiments: with a modest
between-seed SD an interval over examples from three models judges a null method effect most
of the time (``tests/unit/test_evidence.py`` simulates both).

Only a claim about one fixed artifact (a given operator, one trained model named as such) may
be judged over its units: ``about="..."`` declares it, and the interval is then a percentile
bootstrap over the units (Student-t below :data:`BOOTSTRAP_FROM` units).

The verdict compares the interval with the claim's direction and its smallest effect of
interest ``margin`` (docs/evidence.md has the table):

========  ====================================  =====================================
expect    reproduced                            contradicted
========  ====================================  =====================================
``>``     lo > margin                           hi < 0
``<``     hi < -margin                          lo > 0
``≈``     -margin < lo and hi < margin          lo > margin or hi < -margin
========  ====================================  =====================================

Otherwise the claim is *inconclusive*, with the minimum detectable effect at its n (80 %
power, one-sided 5 % test against the margin); a failed premise makes it *not judged*.
Premises are numbers against bounds (:func:`premise`), shown with the claim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

VERDICTS = ("reproduced", "inconclusive", "contradicted", "not judged")
EXPECTS = {">": ">", "<": "<", "≈": "≈", "~": "≈", "~=": "≈", "==": "≈"}
METHODS = ("auto", "t", "bootstrap")
#: Below this many units the interval is Student-t, at or above it a bootstrap (method="auto");
#: only claims about one fixed artifact (``about=``) have that many units.
BOOTSTRAP_FROM = 30
#: A claim keeps its per-seed (or per-unit) effects themselves up to this many values.
MAX_STORED_EFFECTS = 100
#: Power at which the minimum detectable effect is stated.
POWER = 0.8
#: Premise comparisons.
OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


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


@dataclass(frozen=True)
class Effect:
    """A claim's effect reduced to the values its interval runs over.

    ``values`` holds one value per seed (``over="seeds"``; from a seeds x units matrix, the row
    means) or one per unit of a single artifact (``over="units"``); ``units`` counts the
    evaluation units behind each seed's value (None for a 1-D per-seed effect)."""

    values: np.ndarray
    over: str
    units: list[int] | None = None


def _array(effect: Any) -> Any:
    if hasattr(effect, "detach"):
        return effect.detach().cpu().numpy()
    return effect


def _rows(effect: Any) -> list[np.ndarray] | None:
    """The per-seed rows of a 2-D effect (ragged lists of rows allowed), or None if it is 1-D."""
    effect = _array(effect)
    if isinstance(effect, np.ndarray):
        if effect.ndim == 2:
            return [np.asarray(r, dtype=np.float64) for r in effect]
        return None
    if isinstance(effect, Sequence) and not isinstance(effect, str) and effect:
        firsts = [_array(r) for r in effect]
        if all(np.ndim(r) == 1 for r in firsts):
            return [np.asarray(r, dtype=np.float64) for r in firsts]
    return None


def as_effect(effect: Any, unit: str = "seed", about: str | None = None) -> Effect:
    """The values a claim's interval runs over (see the module docstring).

    - 1-D with ``unit="seed"``: one paired difference per seed.
    - 2-D (seeds x units; an array, a tensor or a list of per-seed 1-D arrays whose lengths may
      differ), ``unit`` naming the columns: each seed's row is averaged, the seeds are the units.
    - 1-D over units (``unit`` not "seed") only with ``about`` naming the one fixed artifact.
    """
    rows = _rows(effect)
    if rows is not None:
        if unit == "seed":
            raise ValueError("claim: a 2-D effect has one row per seed and one column per evaluation unit; "
                             "name the columns with unit= ('example', 'user', 'token', ...)")
        if about:
            raise ValueError("claim: about= declares a 1-D effect over the units of one artifact; a 2-D "
                             "effect (seeds x units) is judged over its seeds, so drop about=")
        if any(r.size == 0 for r in rows):
            raise ValueError("claim: a seed's row of the effect is empty; each seed needs at least one unit")
        _finite(np.concatenate(rows))
        return Effect(np.array([r.mean() for r in rows]), "seeds", [int(r.size) for r in rows])
    x = np.asarray(_array(effect), dtype=np.float64)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise ValueError(f"claim: effect must be 1-D (one value per seed) or 2-D (seeds x units), got shape {x.shape}")
    if x.size == 0:
        raise ValueError("claim: effect is empty; pass one paired difference per seed")
    _finite(x)
    if unit == "seed":
        if about:
            raise ValueError("claim: about= is for a claim over the units of one artifact (unit='example', "
                             "'signal', ...); an effect per seed needs no about=")
        return Effect(x, "seeds")
    if not about:
        raise ValueError(
            f"claim: a 1-D effect over {unit}s judges one trained model, not a method: pass a 2-D effect "
            f"(one row per seed, one column per {unit}) so the seeds carry the interval, or, if the claim "
            "is about one fixed artifact, say which with about='...'")
    return Effect(x, "units")


def _finite(x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        raise ValueError("claim: effect holds NaN or inf; a diverged arm needs a premise in "
                         "`requires` (the claim is then not judged), not a NaN effect")


def interval(effect: Any, *, level: float = 0.9, method: str = "auto", n_boot: int = 4000,
             seed: int = 0) -> Interval:
    """Mean of 1-D values with its two-sided ``level`` interval.

    ``method="auto"`` uses Student-t below :data:`BOOTSTRAP_FROM` values and a percentile
    bootstrap (``n_boot`` resamples, generator seeded with ``seed``) from there on. One value
    gives an unbounded t interval; identical values give a zero-width one.
    """
    x = np.asarray(_array(effect), dtype=np.float64).reshape(-1)
    if not 0 < level < 1:
        raise ValueError(f"claim: level must lie in (0, 1), got {level}")
    if method not in METHODS:
        raise ValueError(f"claim: method {method!r} is not one of {', '.join(METHODS)}")
    if x.size == 0:
        raise ValueError("claim: effect is empty")
    _finite(x)
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
    means = bootstrap_means(x, n_boot, seed)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Interval(mean, float(lo), float(hi), n, sd, level, "bootstrap")


def bootstrap_means(x: np.ndarray, n_boot: int = 4000, seed: int = 0) -> np.ndarray:
    """Means of ``n_boot`` resamples of ``x`` with replacement (generator seeded with ``seed``)."""
    rng = np.random.default_rng(seed)
    n = x.size
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = x[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


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


def check_margin(expect: str, margin: float, sign_only: str | None) -> None:
    """A directional claim needs a smallest effect of interest (``margin > 0``) written before
    the run, or ``sign_only`` saying why the paper's finding is only a sign."""
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or margin < 0 or not math.isfinite(margin):
        raise ValueError(f"claim: margin must be a finite number >= 0, got {margin!r}")
    if expect in "<>" and margin == 0 and not sign_only:
        raise ValueError("claim: a directional claim needs its smallest effect of interest, margin > 0, chosen "
                         "from the problem before the run (e.g. 0.01 accuracy, 0.01 nats); margin=0 only with "
                         "sign_only='why the paper's finding is only a sign'")
    if sign_only and margin != 0:
        raise ValueError("claim: sign_only= explains a margin of 0; with a margin > 0 leave it out")


def p_value(x: np.ndarray, expect: str, margin: float, method: str, n_boot: int = 4000) -> float | None:
    """One-sided p-value of "the effect lies beyond the margin in the expected direction" (the
    null: it does not). A directional claim is reproduced exactly when p < (1 - level) / 2 for
    the t interval; Holm's correction across claims uses it. None for equivalence claims and
    for a single value."""
    if expect == "≈" or x.size < 2:
        return None
    sign = 1.0 if expect == ">" else -1.0
    if method == "bootstrap":
        means = bootstrap_means(x, n_boot)
        return float(np.mean(sign * means <= margin))
    se = float(x.std(ddof=1)) / math.sqrt(x.size)
    if se == 0:
        return 0.0 if sign * float(x.mean()) > margin else 1.0
    return float(stats.t.sf((sign * float(x.mean()) - margin) / se, x.size - 1))


def power(iv: Interval, expect: str, margin: float) -> dict[str, float | None]:
    """The minimum detectable effect at this n and SD, and about how many units would detect the
    observed effect (normal approximation), both at :data:`POWER` with a one-sided 5 % test.

    Directional: ``mde = margin + (t_{1-α} + t_{power})·sd/√n``, α = (1 - level)/2. Equivalence:
    the tolerance this n can confirm for a true effect of zero, ``(t_{1-α} + t_{(1+power)/2})·sd/√n``.
    """
    if iv.n < 2 or not math.isfinite(iv.sd):
        return {"mde": math.inf, "n_needed": None}
    alpha = (1 - iv.level) / 2
    df = iv.n - 1
    se = iv.sd / math.sqrt(iv.n)
    z = stats.norm.ppf(1 - alpha)
    if expect == "≈":
        mde = (stats.t.ppf(1 - alpha, df) + stats.t.ppf((1 + POWER) / 2, df)) * se
        room = margin - abs(iv.mean)
        zp = stats.norm.ppf((1 + POWER) / 2)
    else:
        mde = margin + (stats.t.ppf(1 - alpha, df) + stats.t.ppf(POWER, df)) * se
        room = (iv.mean if expect == ">" else -iv.mean) - margin
        zp = stats.norm.ppf(POWER)
    needed = math.ceil(((z + zp) * iv.sd / room) ** 2) if room > 0 and iv.sd > 0 else None
    return {"mde": float(mde), "n_needed": needed}


@dataclass(frozen=True)
class Premise:
    """A premise of a claim: a measured ``value`` compared with a ``bound``.

    ``value`` is the number itself, or the mean of per-seed values (``n``, ``low`` and
    ``high`` then describe them). A premise without numbers (``op=""``) is a condition of the
    run itself, e.g. the step cap (:func:`nbsupport.scales.cap_premise`).
    """

    value: float
    op: str
    bound: float
    n: int = 1
    low: float = math.nan
    high: float = math.nan
    held: bool | None = None

    @property
    def ok(self) -> bool:
        if self.held is not None:
            return self.held
        return bool(OPS[self.op](self.value, self.bound))

    def describe(self) -> str:
        if not self.op:
            return "held" if self.ok else "did not hold"
        value = f"{self.value:.4g}" + (f" (mean of {self.n}: {self.low:.4g} to {self.high:.4g})" if self.n > 1 else "")
        return f"{value} {self.op} {self.bound:.4g}"

    def as_dict(self, statement: str) -> dict[str, Any]:
        return {"statement": statement, "ok": self.ok, "value": self.value, "op": self.op,
                "bound": self.bound, "n": self.n, "low": self.low, "high": self.high, "text": self.describe()}


def premise(value: Any, op: str, bound: float) -> Premise:
    """A claim's premise with its numbers: ``value op bound``, e.g. ``premise(acc, ">", 0.2)``.

    ``value`` is a number or per-seed values (a list, array or tensor); then their mean is
    compared and their range shown. ``op`` is one of ``>``, ``>=``, ``<``, ``<=``.
    """
    if op not in OPS:
        raise ValueError(f"premise: op {op!r} is not one of {', '.join(OPS)}")
    x = np.asarray(_array(value), dtype=np.float64).reshape(-1)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("premise: value must be finite numbers (a number or one value per seed), got "
                         f"{value!r}; a NaN usually means a run diverged: test that instead")
    b = float(bound)
    if not math.isfinite(b):
        raise ValueError(f"premise: bound must be a finite number, got {bound!r}")
    return Premise(float(x.mean()), op, b, int(x.size), float(x.min()), float(x.max()))


def condition(held: bool) -> Premise:
    """A premise about the run itself, with no number to show (the step cap)."""
    return Premise(math.nan, "", math.nan, held=bool(held))


def premises(requires: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The premises (statement -> :class:`Premise`) as JSON-ready dicts with their numbers."""
    if requires is None:
        return []
    if not isinstance(requires, Mapping):
        raise TypeError("claim: requires must be a dict {premise statement: premise(value, op, bound)}, e.g. "
                        "{'the CNN is above chance': premise(acc, '>', 0.2)}")
    out = []
    for statement, p in requires.items():
        if not isinstance(p, Premise):
            raise TypeError(f"claim: the premise {statement!r} is {type(p).__name__}, not numbers; write it as "
                            "premise(value, op, bound), e.g. premise(acc, '>', 0.2), so the report shows them")
        out.append(p.as_dict(str(statement)))
    return out


def judge(effect: Any, *, expect: str = ">", margin: float = 0.0, requires: Mapping[str, Any] | None = None,
          level: float = 0.9, unit: str = "seed", about: str | None = None,
          sign_only: str | None = None) -> dict[str, Any]:
    """Interval, verdict, power and premises of one claim as a JSON-ready dict (the fields the
    report shows), with its per-seed (or per-unit) values when there are at most
    :data:`MAX_STORED_EFFECTS`."""
    expect = normalize_expect(expect)
    check_margin(expect, margin, sign_only)
    eff = as_effect(effect, unit, about)
    method = "t" if eff.over == "seeds" else "auto"
    iv = interval(eff.values, level=level, method=method)
    judged = premises(requires)
    failed = [p["statement"] for p in judged if not p["ok"]]
    result = verdict(iv.lo, iv.hi, expect, margin)
    pw = power(iv, expect, margin)
    reason = ""
    if failed:
        reason = "premise failed: " + "; ".join(f"{p['statement']} ({p['text']})" for p in judged if not p["ok"])
    elif result == "inconclusive":
        reason = inconclusive_reason(iv, expect, margin, pw, "seed" if eff.over == "seeds" else unit)
    return {
        "verdict": "not judged" if failed else result, "reason": reason,
        "expect": expect, "margin": float(margin), "n": iv.n, "over": eff.over,
        "units_per_seed": eff.units if eff.units is None or len(set(eff.units)) > 1 else eff.units[0],
        "about": about or "", "sign_only": sign_only or "",
        "mean": iv.mean, "lo": iv.lo, "hi": iv.hi, "sd": iv.sd, "level": iv.level, "method": iv.method,
        "p": p_value(eff.values, expect, margin, iv.method), **pw, "premises": judged,
        "effect": eff.values.tolist() if eff.values.size <= MAX_STORED_EFFECTS else None,
    }


def inconclusive_reason(iv: Interval, expect: str, margin: float, pw: Mapping[str, Any], unit: str) -> str:
    """Why an inconclusive claim is: "underpowered" when its interval is wider than the margin
    (it cannot tell zero from the smallest effect of interest), with the detectable effect."""
    half = (iv.hi - iv.lo) / 2
    counted = f"n = {iv.n} {unit}{'s' if iv.n != 1 else ''}"
    if expect == "≈":
        what = f"the tolerance {counted} can confirm is ±{pw['mde']:.3g}"
        label = "underpowered" if pw["mde"] >= margin else "the effect lies near the tolerance"
    else:
        what = f"detectable ≥ {pw['mde']:.3g} at {counted}"
        label = "underpowered" if half > margin else "the effect lies near the margin"
    needed = f"; about {pw['n_needed']} {unit}s would decide the observed effect" if pw.get("n_needed") else ""
    return f"{label}: {what}{needed}"


def holm(ps: Sequence[float | None], alpha: float = 0.05) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``
    (Holm 1979): sort the p-values, reject while p_(i) <= alpha / (m - i); None is never rejected."""
    idx = [i for i, p in enumerate(ps) if p is not None]
    order = sorted(idx, key=lambda i: ps[i])
    rejected = [False] * len(ps)
    m = len(order)
    for rank, i in enumerate(order):
        if ps[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected
