"""The three scales every notebook offers, and how a preset is chosen.

A notebook's ``parameters`` cell sets ``SCALE`` (and a few independent knobs); the next cell
calls ``preset(PRESETS, SCALE)`` to get the values derived from it, so papermill overrides
stay consistent. ``NBSUPPORT_SCALE``, when set, overrides ``SCALE`` (the notebook tests use
it to run ``pytest --nbval-lax`` at smoke scale).
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

SCALES = ("smoke", "standard", "full")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    return scale


def preset(presets: dict[str, dict[str, Any]], scale: str) -> SimpleNamespace:
    """Return the preset for ``scale`` (or ``$NBSUPPORT_SCALE``) as an attribute namespace."""
    scale = check_scale(os.environ.get("NBSUPPORT_SCALE") or scale)
    missing = [s for s in SCALES if s not in presets]
    if missing:
        raise ValueError(f"preset table lacks scale(s) {missing}; define smoke, standard and full")
    return SimpleNamespace(scale=scale, **presets[scale])
