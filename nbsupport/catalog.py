"""The notebook table and learning path of the README and ``00_start_here``, generated.

``python -m nbsupport.catalog --index outputs/index.json`` takes the wall time of every
notebook that ran ok in that run (``index.json`` of ``python -m nbsupport run`` or
``make run``), stores it under the run's scale in ``notebooks/timings.json`` (other scales
kept), then rewrites the table between ``<!-- notebook-table -->`` and
``<!-- /notebook-table -->`` in ``README.md`` and in the start page's markdown cell, so both
are readable before anything runs and no time is typed by hand. Without ``--index`` it only
rewrites the tables (after adding a notebook or editing a question). ``--check`` exits 1 if
either table is out of date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import nbformat

from nbsupport.report import entries_of
from nbsupport.runner import NOTEBOOKS, ROOT, list_notebooks
from nbsupport.scales import SCALES

TIMINGS = NOTEBOOKS / "timings.json"
README = ROOT / "README.md"
START = NOTEBOOKS / "00_start_here.ipynb"
BEGIN, END = "<!-- notebook-table -->", "<!-- /notebook-table -->"
#: The order in which to take the themes: each theme's notebooks are numbered in reading order.
THEME_ORDER = ("warmup", "calibration", "merging", "ssm", "recsys")


def short_question(question: str, limit: int = 160) -> str:
    """The question itself: its question sentences (not the context before them), as many
    as fit in about ``limit`` characters, at least one; a first question that leans on the
    sentence before it ("Does it ...", "Do these ...") keeps that sentence."""
    sentences = [re.sub(r"^\(?[a-z]\)\s*", "", s, flags=re.I)
                 for s in re.split(r"(?<=[.?!:])\s+(?=[A-Z(*`])", question)]
    first = next((i for i, s in enumerate(sentences) if s.endswith("?")), None)
    if first is None:
        return question
    text = sentences[first]
    if first > 0 and re.search(r"\b(it|its|these|this|they|them|each one)\b", " ".join(text.split()[:5]), re.I):
        text = sentences[first - 1] + " " + text
    for s in sentences[first + 1:]:
        if not s.endswith("?") or len(text) + len(s) >= limit:
            break
        text += " " + s
    return text[:1].upper() + text[1:]


def fmt_seconds(seconds: float | None) -> str:
    """``42 s``, ``3.5 min``, ``1.2 h``; ``–`` when not measured."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min".replace(".0 min", " min")
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def read_timings(path: Path = TIMINGS) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def merge_index(timings: dict[str, Any], index: Path, note: str) -> dict[str, Any]:
    """``timings`` with the ok runs of ``index`` (one run's ``index.json``) stored under their scale;
    a run under the step cap (its ``step_cap`` record) is not that scale's time and is left out."""
    data = json.loads(Path(index).read_text())
    if not isinstance(data, dict | list) or not (entries := entries_of(data)):
        raise ValueError(f"{index}: expected the index.json that `python -m nbsupport run` writes "
                         "(its \"notebooks\" list is empty or missing); pass outputs/index.json of a run")
    timings = {k: dict(v) for k, v in timings.items()}
    for scale in sorted({e["scale"] for e in entries}):
        ok = {e["notebook"]: e["seconds"] for e in entries if e["scale"] == scale and e["status"] == "ok"
              and "step_cap" not in e.get("records", {})}
        if not ok:
            continue
        old = timings.get(scale, {}).get("seconds", {})
        timings[scale] = {"measured": datetime.date.today().isoformat(), "note": note,
                          "seconds": {**old, **ok}}
    return timings


def learning_path(notebooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Notebooks in reading order: the start page, then the themes in :data:`THEME_ORDER`
    (others after them), each in its numbered order; each entry gets ``after``, the
    notebook to read first (the theme's first notebook; the start page for that one)."""
    rank = {t: i for i, t in enumerate(THEME_ORDER)}
    ordered = sorted(notebooks, key=lambda e: (e["theme"] != "start", rank.get(e["theme"], len(rank)),
                                               e["theme"], e["notebook"]))
    first: dict[str, dict[str, Any]] = {}
    for e in ordered:
        if e["theme"] == "start":
            e["after"] = None
        elif e["theme"] not in first:
            first[e["theme"]] = e
            e["after"] = next((s for s in ordered if s["theme"] == "start"), None)
        else:
            e["after"] = first[e["theme"]]
    return ordered


def render(notebooks: list[dict[str, Any]], timings: dict[str, Any], link_base: str) -> str:
    """The markdown table (links relative to ``link_base``: ``notebooks/`` or ``""``)."""

    def link(e: dict[str, Any]) -> str:
        return f"[{e['title']}]({link_base}{e['notebook'].removeprefix('notebooks/')})"

    scales = list(SCALES)
    head = "| # | theme | notebook | question | read first | " + " | ".join(scales) + " |"
    rows = [head, "|" + "---|" * (5 + len(scales))]
    for i, e in enumerate(learning_path(notebooks)):
        times = [fmt_seconds(timings.get(s, {}).get("seconds", {}).get(e["notebook"])) for s in scales]
        after = e["after"]["title"] if e["after"] else "–"
        question = short_question(e["question"]).replace("|", "\\|")
        rows.append(f"| {i} | {e['theme']} | {link(e)} | {question} | {after} | " + " | ".join(times) + " |")
    measured = [f"{s}: {timings[s]['measured']}, {timings[s]['note']}" for s in scales if s in timings]
    foot = ("Times are wall-clock seconds of one run of each notebook at each scale ("
            + ("; ".join(measured) if measured else "none measured yet")
            + "; `–`: not measured), generated by `python -m nbsupport.catalog --index outputs/index.json`.")
    return "\n".join(rows) + "\n\n" + foot


def replace_between(text: str, table: str, where: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{where}: no {BEGIN} ... {END} markers to write the table between")
    return pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text, count=1)


def start_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if c.cell_type == "markdown" and BEGIN in c.source]
    if len(cells) != 1:
        raise ValueError(f"{START}: expected one markdown cell with {BEGIN}, found {len(cells)}")
    return cells[0]


def tables(timings: dict[str, Any] | None = None) -> tuple[str, str]:
    """(README text, start-page cell source) with up-to-date tables."""
    timings = read_timings() if timings is None else timings
    notebooks = list_notebooks()
    readme = replace_between(README.read_text(), render(notebooks, timings, "notebooks/"), str(README))
    cell = start_cell(nbformat.read(START, as_version=4))
    source = replace_between(cell.source, render(notebooks, timings, ""), str(START))
    return readme, source


def write(timings: dict[str, Any]) -> None:
    readme, source = tables(timings)
    TIMINGS.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    README.write_text(readme)
    nb = nbformat.read(START, as_version=4)
    start_cell(nb).source = source
    nbformat.write(nb, START)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbsupport.catalog", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="index.json of a run (e.g. outputs/index.json)")
    parser.add_argument("--note", default=f"{os.cpu_count()} CPU cores",
                        help="where the times were measured (shown under the table)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    timings = read_timings()
    if args.check:
        readme, source = tables(timings)
        stale = [str(p) for p, ok in ((README, readme == README.read_text()),
                                      (START, source == start_cell(nbformat.read(START, 4)).source)) if not ok]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python -m nbsupport.catalog")
        return 1 if stale else 0
    if args.index:
        if not args.index.is_file():
            print(f"no index at {args.index}: run `python -m nbsupport run` (or make run) first", file=sys.stderr)
            return 2
        timings = merge_index(timings, args.index, args.note)
    write(timings)
    print(f"wrote {README.name}, {START.relative_to(ROOT)} and {TIMINGS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
