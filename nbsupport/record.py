"""Results stored in the executed notebook itself.

``record(name, value)`` displays a JSON bundle with a custom MIME type, so the executed
``.ipynb`` is the single source of its results; ``read_records`` and ``read_claims`` read
them back (tests and the batch report use them). ``check_claim`` records whether a
finding held at this scale: a claim that does not hold is reported as *not reproduced*,
never raised and never forced to pass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RECORD_MIME = "application/vnd.nbsupport.record+json"
CLAIM_MIME = "application/vnd.nbsupport.claim+json"

#: Everything recorded in this process, in order (also outside IPython).
RECORDED: dict[str, Any] = {}
CLAIMS: list[dict[str, Any]] = []


def _jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays to plain JSON values; NaN/inf become strings."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"record: value of type {type(value).__name__} is not JSON-serializable; "
        "pass numbers, strings, lists or dicts of them"
    )


def _display(mime: str, payload: dict[str, Any], text: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency
        return
    if get_ipython() is None:
        return
    display({mime: payload, "text/plain": text}, raw=True)


def record(name: str, value: Any) -> Any:
    """Store ``value`` under ``name`` in the notebook's output and return it unchanged."""
    if not isinstance(name, str) or not name:
        raise ValueError("record: name must be a non-empty string")
    payload = {"name": name, "value": _jsonable(value)}
    RECORDED[name] = payload["value"]
    _display(RECORD_MIME, payload, f"recorded {name} = {json.dumps(payload['value'])[:200]}")
    return value


def check_claim(name: str, held: Any, statement: str, **numbers: Any) -> bool:
    """Record whether the claim ``statement`` held at this scale, with the numbers it rests on.

    ``held`` is the outcome of the comparison the claim makes (computed from recorded
    numbers); it is stored as a bool. Nothing is raised when a claim does not hold: it is
    shown and reported as *not reproduced at this scale*.
    """
    held = bool(held)
    entry = {"name": name, "statement": statement, "held": held, "numbers": _jsonable(numbers)}
    CLAIMS.append(entry)
    RECORDED[f"claim:{name}"] = held
    mark = "held" if held else "NOT reproduced at this scale"
    nums = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())
    _display(CLAIM_MIME, entry, f"[{mark}] {statement} ({nums})")
    return held


def _outputs(path: str | Path, mime: str) -> list[dict[str, Any]]:
    import nbformat  # only readers need it; keeps `import nbsupport` light inside notebooks

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"read_records: no notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if mime in data:
                payload = data[mime]
                found.append(json.loads(payload) if isinstance(payload, str) else payload)
    return found


def read_records(path: str | Path) -> dict[str, Any]:
    """Read every ``record(name, value)`` from an executed notebook (the last value wins)."""
    return {p["name"]: p["value"] for p in _outputs(path, RECORD_MIME)}


def read_claims(path: str | Path) -> list[dict[str, Any]]:
    """Read every ``check_claim`` from an executed notebook, in order."""
    return _outputs(path, CLAIM_MIME)
