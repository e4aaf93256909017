"""nbsupport: everything the Warm Start notebooks share.

Entry points (names fixed): ``record``, ``read_records``, ``read_claims``, ``check_claim``,
``device``, ``seed_everything``, ``preset``; theme modules ``schedules``, ``merging``,
``ssm``, ``calibration``, ``recsys`` are imported on first use (``nbsupport.schedules``).
"""

from __future__ import annotations

import importlib
from typing import Any

from nbsupport.env import device, seed_everything
from nbsupport.record import check_claim, read_claims, read_records, record
from nbsupport.scales import SCALES, preset

__version__ = "0.1.0"
__all__ = [
    "SCALES", "check_claim", "device", "preset", "read_claims", "read_records", "record",
    "seed_everything", "sweep",
]

_LAZY = {"schedules", "merging", "ssm", "calibration", "recsys", "kernels", "data", "models",
         "train", "viz", "runner", "exercises", "progress"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"nbsupport.{name}")
    if name == "sweep":
        return importlib.import_module("nbsupport.sweep").sweep
    raise AttributeError(f"module 'nbsupport' has no attribute {name!r}")
