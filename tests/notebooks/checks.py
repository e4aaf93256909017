"""Checks shared by the notebook tests (importable because pytest's pythonpath has this folder)."""

import math


def finite(x) -> bool:
    """True when every number in ``x`` (nested dicts and lists) is finite; other values pass."""
    if isinstance(x, dict):
        return all(finite(v) for v in x.values())
    if isinstance(x, list):
        return all(finite(v) for v in x)
    if isinstance(x, (int, float)):
        return math.isfinite(x)
    return True


def claims_present(claims, names) -> None:
    """Every claim in ``names`` was stated, and each claim's outcome is a bool."""
    found = {c["name"] for c in claims}
    assert set(names) <= found, f"missing claims: {set(names) - found}"
    assert all(isinstance(c["held"], bool) for c in claims)
