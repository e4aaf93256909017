"""Predict-then-check exercises: compare a reader's answer with the notebook's own number.

An exercise is a markdown prompt ("predict the test ECE after temperature scaling, then run
the next cell"), a code cell where the reader writes the prediction and calls :func:`answer`
with the value the notebook computed, and a hidden solution in markdown::

    <details><summary>Solution</summary>

    Temperature scaling divides every logit by one T > 1 ...

    </details>

``answer`` prints one short verdict (plain text, so it survives in a saved notebook and in
batch runs) and returns None. A reader who has not answered yet (``value=None``) is told
what to do, so the cell also runs unattended (papermill, tests).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

__all__ = ["answer"]


def _number(name: str, what: str, value: Any) -> float:
    """``value`` as a finite float (Python, NumPy or 0-d torch scalar), else one clear error."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu()
        if value.numel() != 1:
            raise ValueError(f"answer({name!r}): {what} must be one number, got a tensor of shape "
                             f"{tuple(value.shape)}; pass e.g. tensor.mean().item()")
        value = value.item()
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:  # numpy scalar or 1-element array
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"answer({name!r}): {what} must be a number, got {type(value).__name__} "
                        f"{value!r}; write your prediction as e.g. 0.05")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"answer({name!r}): {what} is {value}; pass a finite number")
    return value


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def answer(name: str, value: Any, truth: Any, *, tol: float | None = None, rtol: float = 0.1,
           explain: str = "") -> None:
    """Print whether the reader's ``value`` matches the notebook's computed ``truth``.

    Numbers match when ``|value - truth| <= max(tol, rtol * |truth|)`` (``tol`` absolute,
    default 0; ``rtol`` relative, default 10 %); a miss says by how much and in which
    direction, then ``explain`` (why the number is what it is). A string or bool ``truth``
    is compared exactly (strings ignoring case and surrounding spaces). ``value=None`` means
    "not answered yet": a reminder is printed and nothing is judged. Returns None.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("answer: name must be a non-empty string naming the exercise")
    if tol is not None and (not isinstance(tol, Real) or tol < 0):
        raise ValueError(f"answer({name!r}): tol must be a non-negative number, got {tol!r}")
    if not isinstance(rtol, Real) or rtol < 0:
        raise ValueError(f"answer({name!r}): rtol must be a non-negative number, got {rtol!r}")
    why = f" {explain.strip()}" if explain.strip() else ""
    if value is None or value is Ellipsis:
        print(f"{name}: write your prediction in place of None, run this cell, then compare.")
        return
    if isinstance(truth, (str, bool)):
        def norm(v: Any) -> Any:
            return v.strip().lower() if isinstance(v, str) else v
        if isinstance(value, str) != isinstance(truth, str):
            raise TypeError(f"answer({name!r}): the answer is a {type(truth).__name__}, "
                            f"got {type(value).__name__} {value!r}")
        if norm(value) == norm(truth):
            print(f"✓ {name}: {value!r}, right.{why}")
        else:
            print(f"✗ {name}: you said {value!r}; the notebook says {truth!r}.{why}")
        return
    v, t = _number(name, "your answer", value), _number(name, "the computed value", truth)
    allowed = max(tol or 0.0, rtol * abs(t))
    diff = v - t
    if abs(diff) <= allowed:
        print(f"✓ {name}: your {_fmt(v)} is within ±{_fmt(allowed)} of the computed {_fmt(t)}.{why}")
        return
    direction = "high" if diff > 0 else "low"
    ratio = ""
    if t != 0 and v != 0 and (v / t) > 0 and max(v / t, t / v) >= 2:
        ratio = f", about {_fmt(max(v / t, t / v))}x too {direction}"
    print(f"✗ {name}: your {_fmt(v)} is too {direction} by {_fmt(abs(diff))}{ratio} "
          f"(computed {_fmt(t)}, tolerance ±{_fmt(allowed)}).{why}")
