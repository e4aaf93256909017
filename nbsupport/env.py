"""Device choice, seeding and positive-int environment settings."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def device() -> torch.device:
    """The device notebooks run on: ``$NBSUPPORT_DEVICE`` if set, else CUDA when present, else CPU."""
    name = os.environ.get("NBSUPPORT_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def positive_int_env(name: str, meaning: str, unset: str) -> int | None:
    """``$name`` as a positive int, or None when unset or blank; anything else is one error naming
    what the value means (``meaning``) and what leaving it unset does (``unset``)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive int ({meaning}), got {text!r}; unset it {unset}")
    return value


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a torch Generator seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
