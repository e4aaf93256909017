"""Results stored in the executed notebook itself: records, checks and claims.

- ``record(name, value)``: a number (or list/dict of them) a finding rests on.
- ``check(name, ok, statement, **numbers)``: an identity, a library equality or a sanity
  condition. It must hold: a failing check means the code is wrong (the report marks the
  notebook ``check failed``; the notebook tests assert every check).
- ``claim(name, statement, effect, ...)``: a paper's finding as paired effects with a verdict
  (:mod:`nbsupport.evidence`): reproduced, inconclusive, contradicted or not judged.
- ``summary()``: one table of this notebook's claims and checks.

Each is displayed with a custom MIME type, so the executed ``.ipynb`` is the single source of
its results; :func:`read_records`, :func:`read_checks` and :func:`read_claims` read them back.
Everything is keyed by name: running a cell again replaces its entries, never appends.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nbsupport.evidence import VERDICTS, judge
from nbsupport.registry import edits, registered
from nbsupport.scales import MAX_STEPS_ENV, cap_premise, step_cap

RECORD_MIME = "application/vnd.nbsupport.record+json"
CHECK_MIME = "application/vnd.nbsupport.check+json"
CLAIM_MIME = "application/vnd.nbsupport.claim+json"

#: This process's results, keyed by name (insertion order kept; a re-run replaces).
_RECORDS: dict[str, Any] = {}
_CHECKS: dict[str, dict[str, Any]] = {}
_CLAIMS: dict[str, dict[str, Any]] = {}

COLOURS = {"reproduced": "#17692c", "inconclusive": "#8a6d00", "contradicted": "#b00020",
           "not judged": "#555555", "ok": "#17692c", "failed": "#b00020"}


def _jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays to plain JSON values; NaN/inf become strings."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # pandas DataFrame
        value = value.to_dict(orient="list")
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


def _display(bundle: dict[str, Any]) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency
        return
    if get_ipython() is None:
        return
    display(bundle, raw=True)


def _name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{kind}: name must be a non-empty string, got {name!r}")
    return name


def _num(v: Any) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.4g}"
    text = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _numbers(numbers: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in numbers.items())


def record(name: str, value: Any) -> None:
    """Store ``value`` (numbers, strings, lists or dicts of them; arrays, tensors and
    DataFrames are converted) under ``name`` in the notebook's output."""
    name = _name("record", name)
    payload = {"name": name, "value": _jsonable(value)}
    _RECORDS[name] = payload["value"]
    _display({RECORD_MIME: payload, "text/plain": f"recorded {name} = {json.dumps(payload['value'])[:200]}"})


def check(name: str, ok: Any, statement: str, *, needs_training: bool = False, **numbers: Any) -> None:
    """An identity, library equality or sanity condition that must hold, with its numbers.

    A failing check is shown in red and marks the notebook ``check failed`` in the batch
    report (the runner then exits non-zero); it does not raise, so the rest of the notebook
    still runs and shows what went wrong. ``needs_training=True`` marks a check that only a
    model trained for its preset's steps can pass ("training beats the unigram baseline"):
    under the step cap (:mod:`nbsupport.scales`) it is shown as skipped, with ``skipped``
    saying why and ``held`` what the condition gave, and does not fail the notebook.
    """
    name = _name("check", name)
    entry = {"name": name, "statement": str(statement), "ok": bool(ok), "numbers": _jsonable(numbers)}
    if needs_training and step_cap() is not None:
        entry.update(ok=True, held=bool(ok), skipped=f"step-capped run ({MAX_STEPS_ENV}={step_cap()}): "
                                                      "this check needs the preset's training")
    _CHECKS[name] = entry
    mark = "check skipped" if "skipped" in entry else "check ok" if entry["ok"] else "CHECK FAILED"
    text = f"[{mark}] {statement}" + (f" ({_numbers(entry['numbers'])})" if numbers else "")
    if "skipped" in entry:
        text += f"; {entry['skipped']}"
    colour = COLOURS["not judged" if "skipped" in entry else "ok" if entry["ok"] else "failed"]
    _display({CHECK_MIME: entry, "text/plain": text,
              "text/html": f'<span style="color:{colour}"><b>[{mark}]</b></span> {html.escape(text[len(mark) + 3:])}'})


def claim(name: str, statement: str, effect: Any, *, expect: str = ">", margin: float = 0.0,
          unit: str = "seed", paper: str = "", requires: Mapping[str, Any] | None = None,
          about: str | None = None, sign_only: str | None = None, level: float = 0.9) -> None:
    """A paper's finding, judged from paired effects (arm A minus arm B) over trained models.

    ``effect`` holds one paired difference per seed (``unit="seed"``), or a seeds x units matrix
    (one row per seed, one column per test example / user / token named by ``unit``; rows are
    averaged, the seeds carry the interval). A 1-D effect over units is accepted only with
    ``about="..."`` naming the one fixed artifact the claim concerns. ``expect`` is ``">"`` (the
    effect exceeds ``margin``), ``"<"`` (it lies below ``-margin``) or ``"≈"`` (it lies within
    ``±margin``); a directional claim needs ``margin > 0``, its smallest effect of interest, or
    ``sign_only="why"``. ``requires`` maps premise statements to
    :func:`nbsupport.evidence.premise` numbers; a failed one makes the claim *not judged* (under
    the step cap ``$NBSUPPORT_MAX_STEPS`` every claim is: :func:`nbsupport.scales.cap_premise`).
    The claim is compared with the claims registry (``claims.yaml`` beside the notebook) when
    there is one. Verdict rules: :mod:`nbsupport.evidence` (two-sided 90 % interval).
    """
    name = _name("claim", name)
    if not isinstance(unit, str) or not unit:
        raise ValueError("claim: unit names what one effect value is per: 'seed', or the columns of a "
                         "seeds x units effect ('example', 'user', ...)")
    if cap_premise() and (requires is None or isinstance(requires, Mapping)):
        requires = {**(requires or {}), **cap_premise()}
    judged = judge(effect, expect=expect, margin=margin, requires=requires, level=level, unit=unit,
                   about=about, sign_only=sign_only)
    entry = {"name": name, "statement": str(statement), "paper": str(paper), "unit": unit, **judged}
    entry["registry"] = registered(name, entry)
    entry = _jsonable(entry)
    _CLAIMS[name] = entry
    _display({CLAIM_MIME: entry, "text/plain": claim_line(entry)})


def plural(unit: str, n: int) -> str:
    """``seed`` -> ``seeds`` unless n is 1."""
    return unit if n == 1 or unit.endswith("s") else f"{unit}s"


def effect_text(c: Mapping[str, Any]) -> str:
    """``mean [lo, hi]`` of a claim entry (read from a notebook: infinities may be strings)."""
    lo, hi = (float(c[k]) for k in ("lo", "hi"))
    return f"{_num(float(c['mean']))} [{_num(lo)}, {_num(hi)}]"


def n_text(c: Mapping[str, Any]) -> str:
    """What the interval ran over: ``3 seeds``, ``3 seeds × 943 users``, or ``2900 examples of
    <the one artifact>``."""
    n = int(c["n"])
    if c.get("over") == "units":
        return f"{n} {plural(c['unit'], n)} of {c.get('about') or 'one artifact'}"
    text = f"{n} {plural('seed', n)}"
    per = c.get("units_per_seed")
    if c["unit"] != "seed" and per:
        per = round(sum(per) / len(per)) if isinstance(per, list) else per
        text += f" × {'~' if isinstance(c.get('units_per_seed'), list) else ''}{per} {plural(c['unit'], per)}"
    return text


def notes(c: Mapping[str, Any]) -> list[str]:
    """The reason, the premises with their numbers, the registry's word and earlier verdicts."""
    out = [c["reason"]] if c.get("reason") else []
    out += [f"premise {'held' if p['ok'] else 'FAILED'}: {p['statement']} ({p['text']})"
            for p in c.get("premises", []) if p.get("op")]
    if c.get("sign_only"):
        out.append(f"margin 0 (sign only): {c['sign_only']}")
    reg = c.get("registry") or {}
    if reg.get("status") in ("unregistered", "differs"):
        out.append(f"REGISTRY: {reg['status']}: " + "; ".join(reg.get("problems", [])))
    for h in edits(c):
        before = h["before"]
        was = f"{before.get('verdict', '?')} {before.get('effect', '')}".strip() if isinstance(before, Mapping) else before
        out.append(f"edited {h.get('date', '')} after a run ({h.get('change', '')}); before: {was}")
    return out


def claim_line(c: Mapping[str, Any]) -> str:
    """One line for a claim: verdict, statement, effect with its interval and n, then its notes."""
    target = {">": f"> {_num(c['margin'])}", "<": f"< -{_num(c['margin'])}",
              "≈": f"within ±{_num(c['margin'])}"}[c["expect"]]
    rest = "".join(f"; {x}" for x in notes(c))
    return (f"[{c['verdict']}] {c['statement']} effect {effect_text(c)} (expected {target}; "
            f"{int(c['level'] * 100)} % interval, n = {n_text(c)}){rest}")


#: Column headers of a claims table (:func:`claim_row`).
CLAIM_COLUMNS = ("verdict", "claim", "effect [90 % interval]", "expected", "n", "paper")


def claim_row(c: Mapping[str, Any], link: str = "", extra: str = "") -> str:
    """One HTML table row for a claim (columns :data:`CLAIM_COLUMNS`, then ``extra`` cells and
    a link if given)."""
    colour = COLOURS.get(c["verdict"], "#000")
    small = "".join(f"<br><small>{html.escape(x)}</small>" for x in notes(c))
    link_cell = f'<td><a href="{html.escape(link)}">notebook</a></td>' if link else ""
    return (f'<tr><td style="color:{colour};font-weight:bold">{html.escape(c["verdict"])}</td>'
            f'<td>{html.escape(c["statement"])}{small}<br><small><code>{html.escape(c["name"])}</code></small></td>'
            f"<td>{html.escape(effect_text(c))}</td><td>{html.escape(c['expect'])} {_num(float(c['margin']))}</td>"
            f"<td>{html.escape(n_text(c))}</td><td>{html.escape(c.get('paper', ''))}</td>"
            f"{extra}{link_cell}</tr>")


def claims_table(claims: list[Mapping[str, Any]], link: str = "",
                 extra: tuple[str, Callable[[Mapping[str, Any]], str]] | None = None) -> str:
    """An HTML table of claims (the notebook's summary and the batch report); ``extra`` adds a
    column: its header and a function giving a claim's cell content (HTML)."""
    if not claims:
        return "<p>No claims.</p>"
    heads = [*CLAIM_COLUMNS, *([extra[0]] if extra else [])]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads) + ("<th></th>" if link else "")
    rows = "".join(claim_row(c, link, f"<td>{extra[1](c)}</td>" if extra else "") for c in claims)
    return f"<table><tr>{head}</tr>{rows}</table>"


def checks_html(checks: list[Mapping[str, Any]]) -> str:
    """How many checks passed, and the list of them (open when one failed)."""
    failed = [k for k in checks if not k["ok"]]
    items = "".join(
        f'<li style="color:{COLOURS["not judged" if "skipped" in k else "ok" if k["ok"] else "failed"]}">'
        f'{"skipped" if "skipped" in k else "ok" if k["ok"] else "FAILED"}: '
        f'{html.escape(k["statement"])} <small>({html.escape(_numbers(k["numbers"]))})</small></li>' for k in checks)
    skipped = sum("skipped" in k for k in checks)
    return (f"<p><b>Checks:</b> {len(checks) - len(failed) - skipped} passed, "
            + (f"{skipped} skipped (step-capped run), " if skipped else "") + f"{len(failed)} failed.</p>"
            + (f"<details{' open' if failed else ''}><summary>checks</summary><ul>{items}</ul></details>"
               if checks else ""))


def summary_html(claims: list[Mapping[str, Any]], checks: list[Mapping[str, Any]]) -> str:
    """The claims table and the list of checks as HTML (the notebook's summary)."""
    return claims_table(claims) + checks_html(checks)


def summary() -> None:
    """Display one table of this notebook's claims (verdict, effect ± interval, n, paper) and
    its checks. Call it at the end of the Findings section."""
    claims, checks = list(_CLAIMS.values()), list(_CHECKS.values())
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS}
    failed = sum(not k["ok"] for k in checks)
    cap = step_cap()
    banner = (f"Step-capped run ({MAX_STEPS_ENV}={cap}): models trained for at most {cap} steps; "
              f"no claim is judged." if cap is not None else "")
    text = (banner + "\n" if banner else "") + (f"{len(claims)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
            + f"; checks: {len(checks) - failed} passed, {failed} failed\n"
            + "\n".join(claim_line(c) for c in claims))
    head = f'<p style="color:{COLOURS["failed"]}"><b>{html.escape(banner)}</b></p>' if banner else ""
    _display({"text/html": head + summary_html(claims, checks), "text/plain": text})


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


def _by_name(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Last entry per name, in order of first appearance."""
    return list({e["name"]: e for e in entries}.values())


def read_records(path: str | Path) -> dict[str, Any]:
    """Every ``record(name, value)`` of an executed notebook (the last value wins)."""
    return {p["name"]: p["value"] for p in _outputs(path, RECORD_MIME)}


def read_checks(path: str | Path) -> list[dict[str, Any]]:
    """Every ``check`` of an executed notebook, one per name."""
    return _by_name(_outputs(path, CHECK_MIME))


def read_claims(path: str | Path) -> list[dict[str, Any]]:
    """Every ``claim`` of an executed notebook, one per name, with its verdict."""
    return _by_name(_outputs(path, CLAIM_MIME))
