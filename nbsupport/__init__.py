"""nbsupport: everything the Warm Start notebooks share.

Entry points (names fixed): ``record``, ``check``, ``claim``, ``summary``, ``read_records``,
``read_checks``, ``read_claims``, ``premise``, ``device``, ``seed_everything``, ``preset``; theme modules
``schedules``, ``merging``, ``ssm``, ``calibration``, ``recsys`` are imported on first use
(``nbsupport.schedules``).
"""

from __future__ import annotations

import importlib
from typing import Any

from nbsupport.env import device, seed_everything
from nbsupport.evidence import premise
from nbsupport.record import (
    check,
    claim,
    read_checks,
    read_claims,
    read_records,
    record,
    summary,
)
from nbsupport.scales import SCALES, preset
from nbsupport.sweep import sweep

__version__ = "0.1.0"
__all__ = [
    "SCALES", "check", "claim", "device", "premise", "preset", "read_checks", "read_claims",
    "read_records", "record", "seed_everything", "summary", "sweep",
]

# ``nbsupport.sweep`` is the function: bound above, after Python set the package attribute, and
# never rebound because the package is imported only once.
_LAZY = {"schedules", "merging", "ssm", "calibration", "recsys", "warmup", "kernels", "data", "models",
         "train", "viz", "runner", "evidence", "exercises", "progress"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"nbsupport.{name}")
    raise AttributeError(f"module 'nbsupport' has no attribute {name!r}")
