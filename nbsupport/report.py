"""The batch report: ``<out>/index.json`` and ``<out>/index.html``.

The HTML opens with a scoreboard per theme (claims reproduced / inconclusive / contradicted /
not judged; checks passed / failed; notebooks failed), then lists every notebook with its scale,
run time and status, and each claim with its statement, paper, effect ± interval, n, verdict
and a link to the executed notebook. ``index.json`` holds the same (schema in docs/report.md).
Entries are merged by notebook path, so runs of different notebooks into one folder add up.
"""

from __future__ import annotations

import html
import json
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nbsupport.atomic import atomic_write, locked
from nbsupport.evidence import VERDICTS, holm
from nbsupport.record import COLOURS, checks_html, claim_row, claims_table

SCHEMA = "warm-start-report/2"
#: Family-wise level of Holm's correction: the one-sided level of each verdict's interval.
HOLM_ALPHA = 0.05
#: Notebook statuses: ran and every check held / a check failed / the run raised or timed out.
STATUSES = ("ok", "check failed", "failed")


def fmt(v: Any) -> str:
    """A value for an HTML cell: floats to 4 significant digits, lists and dicts as JSON."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(json.dumps(v) if isinstance(v, (list, dict)) else str(v))


def scoreboard(entries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per theme (and ``"all"``): notebooks, failed runs, claims per verdict, how many reproduced
    directional claims survive Holm's correction across that row's judged directional claims,
    and checks passed/failed."""
    board: dict[str, dict[str, int]] = {}
    family: dict[str, list[float | None]] = {}
    for e in entries:
        for key in (e["theme"], "all"):
            row = board.setdefault(key, {"notebooks": 0, "failed": 0, **dict.fromkeys(VERDICTS, 0),
                                         "reproduced (Holm)": 0, "checks passed": 0, "checks failed": 0})
            row["notebooks"] += 1
            row["failed"] += e["status"] == "failed"
            for c in e.get("claims", []):
                row[c["verdict"]] += 1
                if c.get("expect") in ("<", ">") and c["verdict"] != "not judged":
                    p = c.get("p")
                    family.setdefault(key, []).append(float(p) if isinstance(p, (int, float)) else None)
            for k in e.get("checks", []):
                row["checks passed" if k["ok"] else "checks failed"] += 1
    for key, ps in family.items():
        board[key]["reproduced (Holm)"] = sum(holm(ps, HOLM_ALPHA))
    return dict(sorted(board.items(), key=lambda kv: (kv[0] == "all", kv[0])))


def entries_of(index: Any) -> list[dict[str, Any]]:
    """Notebook entries of an existing index.json (a list in reports before the schema)."""
    entries = index.get("notebooks", []) if isinstance(index, dict) else index
    # entries written before claims had verdicts carry nothing the scoreboard can count
    return [{**e, "claims": [c for c in e.get("claims", []) if "verdict" in c],
             "checks": e.get("checks", [])} for e in entries]


#: What an entry read back from index.json gets for a field it lacks.
ENTRY_DEFAULTS: dict[str, Any] = {"title": "", "scale": "?", "status": "failed", "seconds": 0.0,
                                  "output": "", "html": "", "error": "", "warning": "", "records": {}}


def _usable_claim(c: Any) -> bool:
    try:
        return isinstance(c, Mapping) and c["verdict"] in VERDICTS and bool(claim_row(c))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def _usable_check(k: Any) -> bool:
    return isinstance(k, Mapping) and isinstance(k.get("ok"), bool) and {"statement", "numbers"} <= set(k)


def repair_entry(e: Any) -> dict[str, Any] | None:
    """An entry read back from index.json with the fields it lacks filled in and the claims and
    checks the report cannot show dropped; None when it names no notebook."""
    if not isinstance(e, Mapping) or not isinstance(e.get("notebook"), str) or not e["notebook"]:
        return None
    entry = {**ENTRY_DEFAULTS, **e}
    entry.setdefault("theme", Path(e["notebook"]).parent.name or "?")
    for key, kind in (("title", str), ("scale", str), ("status", str), ("theme", str), ("error", str),
                      ("output", str), ("html", str), ("warning", str), ("records", dict)):
        if not isinstance(entry[key], kind):
            entry[key] = ENTRY_DEFAULTS.get(key, "?")
    if not isinstance(entry["seconds"], (int, float)) or isinstance(entry["seconds"], bool):
        entry["seconds"] = 0.0
    claims, checks = entry.get("claims"), entry.get("checks")
    entry["claims"] = [c for c in claims if _usable_claim(c)] if isinstance(claims, list) else []
    entry["checks"] = [k for k in checks if _usable_check(k)] if isinstance(checks, list) else []
    return entry


def _salvage(text: str) -> list[Any]:
    """The whole entries at the start of the ``notebooks`` list of a truncated index.json."""
    decoder = json.JSONDecoder()
    start = text.find('"notebooks"')
    start = text.find("[", start) + 1 if start >= 0 else 0
    found: list[Any] = []
    while start > 0:
        while start < len(text) and text[start] in " \t\r\n,":
            start += 1
        try:
            value, start = decoder.raw_decode(text, start)
        except ValueError:
            break
        found.append(value)
    return found


def read_index(index_json: Path) -> tuple[list[dict[str, Any]], str]:
    """The entries of ``index_json`` that can be read (repaired, see :func:`repair_entry`) and
    what was wrong with the file ("" when nothing was; no file is an empty report)."""
    try:
        text = index_json.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], ""
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"cannot read it ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    try:
        index = json.loads(text)
    except ValueError as exc:
        return [e for e in map(repair_entry, _salvage(text)) if e], f"not valid JSON ({exc})"
    raw = index.get("notebooks") if isinstance(index, dict) else index
    if not isinstance(raw, list):
        return [], f"not a report (a JSON {type(index).__name__} without a \"notebooks\" list)"
    entries = [e for e in map(repair_entry, raw) if e]
    lost = len(raw) - len(entries)
    return entries, f"{lost} of its {len(raw)} entries name no notebook" if lost else ""


def keep_aside(path: Path) -> Path:
    """Rename a damaged ``path`` to ``<name>.corrupt-<time>`` beside it; returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(target)
    return target


def build_index(entries: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(entries, key=lambda e: e["notebook"])
    return {"schema": SCHEMA, "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "scoreboard": scoreboard(ordered), "notebooks": ordered}


def merge_entries(index_json: Path, new: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Entries of ``index_json`` (if any) with ``new`` replacing those of the same notebook.

    A damaged index.json (not JSON, truncated, the wrong shape, entries that name no notebook)
    is renamed to ``index.json.corrupt-<time>`` with one line on stderr, and the entries that
    can be read are kept; an entry that lacks fields gets defaults (:func:`repair_entry`)."""
    old, problem = read_index(index_json)
    if problem:
        kept = keep_aside(index_json)
        print(f"warning: {index_json} was damaged ({problem[:200]}): kept as {kept.name}; "
              f"{len(old)} readable entries carried over", file=sys.stderr)
    entries = {e["notebook"]: e for e in old}
    for e in new:
        entries[e["notebook"]] = dict(e)
    return list(entries.values())


def _scoreboard_html(board: Mapping[str, Mapping[str, int]]) -> str:
    cols = ["notebooks", "failed", VERDICTS[0], "reproduced (Holm)", *VERDICTS[1:], "checks passed", "checks failed"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for theme, row in board.items():
        cells = []
        for c in cols:
            colour = COLOURS.get(c, COLOURS["failed"] if c in ("failed", "checks failed") and row[c] else "#000")
            cells.append(f'<td style="color:{colour}">{row[c]}</td>')
        name = "<b>all</b>" if theme == "all" else html.escape(theme)
        rows.append(f"<tr><td>{name}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>theme</th>{head}</tr>{''.join(rows)}</table>"


def render_index(index: Mapping[str, Any], replication: Mapping[str, Any] | None = None) -> str:
    """The report page for an index (see :func:`build_index`), with a replication column when a
    replication report (:mod:`nbsupport.replicate`) is given."""
    from nbsupport import replicate

    sections = []
    for e in index["notebooks"]:
        colour = COLOURS["ok" if e["status"] == "ok" else "failed"]
        status = html.escape(e["status"] + (f": {e['error']}" if e.get("error") else ""))
        warning = (f' · <span style="color:{COLOURS["inconclusive"]}">warning: {html.escape(e["warning"])}</span>'
                   if e.get("warning") else "")
        links = " ".join(f'<a href="{html.escape(e[k])}">{k}</a>' for k in ("html", "output") if e.get(k))
        rows = replicate.lookup(replication or {}, e["notebook"])
        extra = (f"fresh seeds from {replication['seed_base']}", lambda c, rows=rows: replicate.cell(rows.get(c["name"]))) \
            if rows else None
        claims = claims_table(e.get("claims", []), e.get("html") or e.get("output") or "", extra)
        checks = checks_html(e["checks"]) if e.get("checks") else ""
        sections.append(
            f"<h3>{html.escape(e.get('title') or e['notebook'])}</h3>"
            f"<p><small>{html.escape(e['notebook'])}</small> · {html.escape(e['theme'])} · "
            f"scale {html.escape(e['scale'])} · {e['seconds']:.1f} s · "
            f'<span style="color:{colour}">{status}</span>{warning} · {links}</p>'
            + claims
            + checks)
    replication_note = (f' <a href="replication.html">Replication on seeds from {replication["seed_base"]}</a> '
                        f'at scale {html.escape(str(replication["scale"]))}.' if replication else "")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Warm Start: results</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top}}h3{{margin-bottom:0.2em}}</style></head><body>
<h1>Warm Start: results</h1>
<p>Each claim is a paper's finding judged from paired effects over trained models (seeds; per-example or
per-user values are averaged within each seed first): reproduced when the 90 % interval of the mean effect
lies beyond the smallest effect of interest (the margin) in the expected direction, contradicted when it lies
entirely on the other side of zero, inconclusive otherwise (with the effect its n could detect), not judged
when a premise failed. "Reproduced (Holm)" counts the reproductions that survive Holm's correction across the
row's directional claims. A claim about one fixed artifact says so. Checks are identities and sanity
conditions that must hold. Generated {html.escape(index["generated"])}.{replication_note}</p>
{_scoreboard_html(index["scoreboard"])}
{"".join(sections)}
</body></html>
"""


def write_report(entries: Iterable[Mapping[str, Any]], out: Path) -> Path:
    """Merge ``entries`` into ``<out>/index.json`` and rewrite ``<out>/index.html`` (atomically)."""
    out = Path(out)
    from nbsupport.replicate import read

    index = build_index(merge_entries(out / "index.json", entries))
    atomic_write(out / "index.json", json.dumps(index, indent=1))
    atomic_write(out / "index.html", render_index(index, read(out)))
    return out / "index.html"


def rewrite_report(out: Path) -> Path | None:
    """Rewrite ``<out>/index.html`` from its index.json (e.g. after a replication report was
    written beside it); None when there is no index yet."""
    if not (Path(out) / "index.json").exists():
        return None
    with locked(Path(out) / "index.json"):
        return write_report([], Path(out))
