"""Checks shared by the notebook tests (importable because pytest's pythonpath has this folder)."""

from __future__ import annotations

import math

from nbsupport.evidence import VERDICTS
from nbsupport.scales import CAP_PREMISE


def finite(x) -> bool:
    """True when every value in ``x`` (nested dicts and lists) is a finite number or a non-number
    string. NaN and infinities fail, also as the strings "nan" / "inf" that ``record`` stores
    them as; booleans pass."""
    if isinstance(x, dict):
        return all(finite(v) for v in x.values())
    if isinstance(x, list):
        return all(finite(v) for v in x)
    if isinstance(x, bool):
        return True
    if isinstance(x, (int, float)):
        return math.isfinite(x)
    if isinstance(x, str):
        return x.strip().lower().lstrip("+-") not in {"nan", "inf", "infinity"}
    return True


def claim_is_well_formed(c: dict) -> None:
    """A claim read back from a notebook has an effect, an interval, n and a verdict; it is
    registered as the notebook states it (claims.yaml beside it), and its premises carry numbers."""
    assert c["verdict"] in VERDICTS, c
    assert isinstance(c["n"], int) and c["n"] >= 1, c
    assert isinstance(c["mean"], (int, float)) and math.isfinite(c["mean"]), c
    lo, hi = float(c["lo"]), float(c["hi"])
    assert lo <= c["mean"] <= hi, c
    assert c["expect"] in (">", "<", "≈") and c["margin"] >= 0 and c["unit"] and c["statement"], c
    assert c["verdict"] != "not judged" or c["reason"].startswith("premise failed"), c
    assert c["expect"] == "≈" or c["margin"] > 0 or c["sign_only"], c
    assert c["registry"]["status"] == "registered", (c["name"], c["registry"])
    assert all("value" in p and "bound" in p for p in c["premises"]), c


def claims_present(claims, names) -> None:
    """Exactly the claims in ``names`` were stated (the ``run_notebook`` fixture has already
    asserted that each is well formed)."""
    found = {c["name"] for c in claims}
    assert found == set(names), f"missing: {set(names) - found}; unexpected: {found - set(names)}"


def premise_counts(claims, premises):
    """Each claim has exactly the premises counted in ``premises`` (claim name -> count; the step
    cap's aside), each a comparison of numbers."""
    for c in claims:
        own = [p for p in c["premises"] if p["statement"] != CAP_PREMISE]
        assert len(own) == premises.get(c["name"], 0), (c["name"], own)
        assert all(p["op"] in (">", ">=", "<", "<=") and finite([p["value"], p["bound"]]) for p in own), own
