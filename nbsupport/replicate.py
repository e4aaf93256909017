"""Replication on fresh seeds: ``python -m nbsupport replicate PATHS --seed-base 1000``.

The seeds used while a claim was developed are not its confirmation. Every notebook that trains
takes ``SEED_BASE`` (its first training seed) beside ``SEEDS``; this command runs the named
notebooks at the chosen scale on the disjoint seeds ``seed_base ... seed_base + SEEDS - 1``
(into ``<out>/replication-<seed_base>/``), runs the originals too where ``<out>`` holds none at
that scale on other seeds, and writes per claim the verdict and effect on both seed sets to
``<out>/replication.json`` and ``<out>/replication.html``. The batch report (``index.html``)
then shows a replication column.
"""

from __future__ import annotations

import html
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from nbsupport.atomic import atomic_write, locked
from nbsupport.record import COLOURS, effect_text, read_claims

SCHEMA = "warm-start-replication/1"
REPLICATION = "replication.json"


def _summary(c: Mapping[str, Any]) -> dict[str, Any]:
    return {k: c[k] for k in ("verdict", "mean", "lo", "hi", "n") if k in c}


def compare(original: list[Mapping[str, Any]], fresh: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per claim (by name, the original's order): both verdicts and effects, whether the verdict
    held, and whether the original interval holds the fresh seeds' mean effect."""
    by_name = {c["name"]: c for c in fresh}
    rows = []
    for c in original:
        f = by_name.get(c["name"])
        row = {"name": c["name"], "statement": c["statement"], "original": _summary(c),
               "fresh": _summary(f) if f else None}
        if f:
            row["same_verdict"] = f["verdict"] == c["verdict"]
            row["inside_original_interval"] = float(c["lo"]) <= float(f["mean"]) <= float(c["hi"])
        rows.append(row)
    names = {c["name"] for c in original}
    rows += [{"name": f["name"], "statement": f["statement"], "original": None, "fresh": _summary(f)}
             for f in fresh if f["name"] not in names]
    return rows


def ran_with(nb_path: Path) -> tuple[str, Any]:
    """The scale and ``SEED_BASE`` an executed notebook ran with (the runner's and papermill's
    records in its metadata)."""
    meta = nbformat.read(nb_path, as_version=4).metadata
    return meta.get("nbsupport", {}).get("scale", ""), meta.get("papermill", {}).get("parameters", {}).get("SEED_BASE", 0)


def read(out: Path) -> dict[str, Any]:
    """``<out>/replication.json`` (empty when there is none or it cannot be read)."""
    path = Path(out) / REPLICATION
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else {}


def cell(row: Mapping[str, Any] | None) -> str:
    """The report's replication cell for one claim: the fresh seeds' verdict and effect."""
    if not row or not row.get("fresh"):
        return ""
    f = row["fresh"]
    mark = "" if row.get("same_verdict") else " <b>(verdict changed)</b>"
    return (f'<span style="color:{COLOURS.get(f["verdict"], "#000")}">{html.escape(f["verdict"])}</span>{mark}'
            f"<br><small>{html.escape(effect_text(f))}, n = {f['n']}</small>")


def lookup(replication: Mapping[str, Any], notebook: str) -> dict[str, dict[str, Any]]:
    """Claim name -> replication row for one notebook of a replication report."""
    return {r["name"]: r for r in (replication.get("notebooks") or {}).get(notebook, {}).get("claims", [])}


def render(data: Mapping[str, Any]) -> str:
    rows = []
    for nb, entry in sorted((data.get("notebooks") or {}).items()):
        for r in entry["claims"]:
            o, f = r.get("original"), r.get("fresh")
            rows.append(
                f"<tr><td>{html.escape(nb)}</td><td><code>{html.escape(r['name'])}</code></td>"
                + "".join(f'<td style="color:{COLOURS.get(x["verdict"], "#000")}">{html.escape(x["verdict"])}</td>'
                          f"<td>{html.escape(effect_text(x))}</td>" if x else "<td></td><td></td>" for x in (o, f))
                + f"<td>{'yes' if r.get('same_verdict') else 'NO'}</td>"
                + f"<td>{'yes' if r.get('inside_original_interval') else 'no'}</td></tr>")
    n = sum(1 for e in (data.get("notebooks") or {}).values() for _ in e["claims"])
    same = sum(1 for e in (data.get("notebooks") or {}).values() for r in e["claims"] if r.get("same_verdict"))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Warm Start: replication</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 6px}}</style></head><body>
<h1>Replication on fresh seeds</h1>
<p>Scale {html.escape(str(data.get("scale")))}; fresh seeds from {data.get("seed_base")}; generated
{html.escape(str(data.get("generated")))}. {same} of {n} claims kept their verdict.</p>
<table><tr><th>notebook</th><th>claim</th><th>original</th><th>effect [90 %]</th><th>fresh seeds</th>
<th>effect [90 %]</th><th>same verdict</th><th>fresh mean inside the original interval</th></tr>
{"".join(rows)}</table></body></html>
"""


def replicate(paths: list[str], seed_base: int, scale: str = "standard", out: str | Path = "outputs",
              timeout: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Run ``paths`` on seeds from ``seed_base`` (and the originals where missing), compare
    claim by claim, write ``replication.json`` / ``.html`` and refresh the report."""
    from nbsupport.report import rewrite_report
    from nbsupport.runner import UsageError, discover, notebook_key, parameters_of, run, theme_of

    if seed_base < 1:
        raise UsageError(f"--seed-base must be a positive int disjoint from the original seeds, got {seed_base}")
    out = Path(out).resolve()
    notebooks = discover(paths)
    trains = [nb for nb in notebooks if "SEED_BASE" in parameters_of(nb)]
    skipped = [nb for nb in notebooks if nb not in trains]
    for nb in skipped:
        print(f"skipped {nb.name}: it trains nothing (no SEED_BASE parameter)", file=sys.stderr)
    if not trains:
        raise UsageError("none of these notebooks has a SEED_BASE parameter: nothing to replicate")
    originals = {nb: out / theme_of(nb) / nb.name for nb in trains}
    def current(o: Path) -> bool:  # an original at this scale, on other seeds than the fresh ones
        if not o.exists():
            return False
        ran_scale, ran_base = ran_with(o)
        return ran_scale == scale and ran_base != seed_base

    stale = [nb for nb, o in originals.items() if not current(o)]
    if stale:
        run([str(nb) for nb in stale], scale=scale, out=out, timeout=timeout, progress=progress)
    fresh_out = out / f"replication-{seed_base}"
    run([str(nb) for nb in trains], scale=scale, params={"SEED_BASE": seed_base}, out=fresh_out,
        timeout=timeout, progress=progress)
    with locked(out / REPLICATION):
        data = read(out)
        same_run = data.get("seed_base") == seed_base and data.get("scale") == scale
        entries = dict(data.get("notebooks") or {}) if same_run else {}
        for nb in trains:
            key = notebook_key(nb)
            o, f = originals[nb], fresh_out / theme_of(nb) / nb.name
            entries[key] = {"claims": compare(read_claims(o) if o.exists() else [], read_claims(f) if f.exists() else []),
                            "fresh_output": str(f.relative_to(out)) if f.exists() else ""}
        data = {"schema": SCHEMA, "seed_base": seed_base, "scale": scale,
                "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notebooks": entries}
        atomic_write(out / REPLICATION, json.dumps(data, indent=1))
        atomic_write(out / "replication.html", render(data))
    rewrite_report(out)
    return data


def main_replicate(args) -> int:
    data = replicate(args.paths, args.seed_base, scale=args.scale, out=args.out, timeout=args.timeout,
                     progress=sys.stderr.isatty())
    changed = 0
    for nb, entry in data["notebooks"].items():
        for r in entry["claims"]:
            o, f = r.get("original"), r.get("fresh")
            changed += not r.get("same_verdict")
            show = [f"{x['verdict']} {effect_text(x)}" if x else "(missing)" for x in (o, f)]
            print(f"{nb}  {r['name']}: {show[0]}  ->  {show[1]}")
    print(f"replication: {Path(args.out) / 'replication.html'} ({changed} verdicts changed)")
    return 0


def add_arguments(sub) -> None:
    p = sub.add_parser("replicate", help="rerun notebooks on fresh seeds and compare every claim's verdict")
    p.add_argument("paths", nargs="+", help="notebooks or folders")
    p.add_argument("--seed-base", type=int, default=1000, help="first fresh seed (default 1000)")
    p.add_argument("--scale", default="standard")
    p.add_argument("--out", default="outputs", help="folder of the original run and the report (default: outputs/)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="stop a notebook that runs longer")
    p.set_defaults(func=main_replicate, interrupted="finished notebooks are kept; no comparison was written")
