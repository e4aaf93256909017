"""The three scales every notebook offers, how a preset is chosen, and the step cap.

A notebook's ``parameters`` cell sets ``SCALE`` (and a few independent knobs); the next cell
calls ``preset(PRESETS, SCALE)`` to get the values derived from it, so papermill overrides
stay consistent. ``NBSUPPORT_SCALE``, when set, overrides ``SCALE`` (the notebook tests use
it to run ``pytest --nbval-lax`` at smoke scale).

**The step cap** (``NBSUPPORT_MAX_STEPS=N``, a positive int) lets a CPU execute a notebook at
any scale, ``full`` included, in seconds: the presets, data and shapes stay those of the
scale, but

- every training run of :func:`nbsupport.train.fit` (the one training loop) stops after at
  most ``N`` optimizer steps (:func:`capped_steps`);
- preset values a notebook names in ``preset(..., capped={...})`` (evaluation batches, test
  examples, corpus sizes) are lowered to the values given there; step counts the notebook
  reads back from its logs (a budget, the step a model grows at) are named there too, with
  values of at most 3, so that any cap of 3 or more leaves those runs whole;
- every claim gets the premise :data:`CAP_PREMISE`, false, so it is *not judged*: nothing is
  concluded from models trained for a few steps. Checks still must hold.

``preset`` records the cap (``step_cap``) and prints a banner, so an executed notebook says
it was capped. Unset or empty: no cap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from nbsupport.env import positive_int_env
from nbsupport.evidence import Premise, condition

SCALES = ("smoke", "standard", "full")
MAX_STEPS_ENV = "NBSUPPORT_MAX_STEPS"
CAP_PREMISE = f"the run was not step-capped ({MAX_STEPS_ENV} unset)"


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    return scale


def step_cap() -> int | None:
    """The step cap ``$NBSUPPORT_MAX_STEPS`` as a positive int, or None when unset or empty."""
    return positive_int_env(MAX_STEPS_ENV, "a number of steps, e.g. 3", "to train for the preset's steps")


def capped_steps(steps: int) -> int:
    """``steps``, or the step cap when that is lower (the training loops call this)."""
    cap = step_cap()
    return steps if cap is None else min(steps, cap)


def cap_premise() -> dict[str, Premise]:
    """The premise every claim gets: ``{CAP_PREMISE: condition(False)}`` (a condition of the
    run, with no number) under the step cap, else ``{}``."""
    return {} if step_cap() is None else {CAP_PREMISE: condition(False)}


def _lower(name: str, value: Any, limit: Any) -> Any:
    """``value`` lowered to ``limit``: numbers to ``min``, lists to their first ``limit``
    entries (or to ``limit`` itself when it is a list), None ("everything") to ``limit``."""
    if value is None or (isinstance(value, list | tuple) and isinstance(limit, list | tuple)):
        return limit
    if isinstance(value, list | tuple):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"preset: capped[{name!r}] keeps the first n entries of a list: give a positive int")
        return type(value)(value[:limit])
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"preset: capped[{name!r}] lowers a number, a list or None, not {type(value).__name__}")
    return min(value, limit)


def preset(presets: dict[str, dict[str, Any]], scale: str,
           capped: Mapping[str, Any] | None = None) -> SimpleNamespace:
    """Return the preset for ``scale`` (or ``$NBSUPPORT_SCALE``) as an attribute namespace.

    ``capped`` maps preset keys to the values they take at most under the step cap (a number:
    the minimum of the two; a list preset: its first n entries, or the list given; None, "all
    of it": the value),
    e.g. ``capped={"eval_batches": 1, "n_test": 200}``; without the cap it changes nothing.
    Under the cap a banner is printed and ``step_cap`` recorded.
    """
    scale = check_scale(os.environ.get("NBSUPPORT_SCALE") or scale)
    missing = [s for s in SCALES if s not in presets]
    if missing:
        raise ValueError(f"preset table lacks scale(s) {missing}; define smoke, standard and full")
    values = dict(presets[scale])
    unknown = sorted(set(capped or {}) - set(values))
    if unknown:
        raise ValueError(f"preset: capped names {unknown}, which the {scale} preset lacks")
    cap = step_cap()
    if cap is not None:
        from nbsupport.record import record

        values.update({k: _lower(k, values[k], v) for k, v in (capped or {}).items()})
        print(f"STEP-CAPPED RUN ({MAX_STEPS_ENV}={cap}): every training run stops after {cap} steps"
              + (f"; lowered {', '.join(capped)}" if capped else "")
              + ". Shapes and code are exercised; no claim is judged.")
        record("step_cap", {"max_steps": cap, "scale": scale, "lowered": {k: values[k] for k in capped or {}}})
    return SimpleNamespace(scale=scale, **values)
