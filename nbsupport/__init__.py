"""nbsupport: everything the Warm Start notebooks share.

Entry points (names fixed): ``record``, ``check``, ``claim``, ``summary``, ``read_records``,
``read_checks``, ``read_claims``, ``device``, ``seed_everything``, ``preset``; theme modules
``schedules``, ``merging``, ``ssm``, ``calibration``, ``recsys`` are imported on first use
(``nbsupport.schedules``).
"""

from __future__ import annotations

import importlib
from typing import Any

from nbsupport.env import device, seed_everything
from nbsupport.record import (
    check,
    check_claim,
    claim,
    read_checks,
    read_claims,
    read_records,
    record,
    summary,
)
from nbsupport.scales import SCALES, preset
from nbsupport.viz import setup as _viz_setup

__version__ = "0.1.0"
__all__ = [
    "SCALES", "check", "check_claim", "claim", "device", "preset", "read_checks", "read_claims",
    "read_records", "record", "seed_everything", "summary", "sweep",
]

_LAZY = {"schedules", "merging", "ssm", "calibration", "recsys", "warmup", "kernels", "data", "models",
         "train", "viz", "runner", "evidence"}

_viz_setup()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"nbsupport.{name}")
    if name == "sweep":
        return importlib.import_module("nbsupport.sweep").sweep
    raise AttributeError(f"module 'nbsupport' has no attribute {name!r}")
