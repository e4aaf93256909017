"""Batch execution of notebooks with papermill, and the HTML report of their findings.

``run(paths, scale=..., params=..., jobs=..., out=...)`` executes each notebook headless with
the current environment's kernel, writes ``<out>/<theme>/<name>.ipynb`` and ``.html`` (plotly
embedded, viewable offline) atomically, keeps going past a failing notebook, and writes
``<out>/index.html`` and ``<out>/index.json``: every notebook with its scale, wall time,
status and claims. Source notebooks are only read.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from tqdm.auto import tqdm

from nbsupport.atomic import atomic_write
from nbsupport.record import read_checks, read_claims, read_records
from nbsupport.report import write_report
from nbsupport.scales import SCALES, check_scale

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


class UsageError(ValueError):
    """A bad path, scale or parameter: reported as one line, exit code 2."""


@dataclass
class Result:
    notebook: str
    theme: str
    title: str
    scale: str
    status: str
    seconds: float
    output: str
    html: str
    error: str = ""
    claims: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)


def discover(paths: list[str] | None = None) -> list[Path]:
    """Notebook files named by ``paths`` (files or folders; default: all of notebooks/)."""
    if not paths:
        paths = [str(NOTEBOOKS)]
    found: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found += sorted(q for q in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no notebook at {p!r}: give .ipynb files or folders that contain them")
    if not found:
        raise UsageError(f"no notebooks found under {', '.join(paths)}")
    return [f.resolve() for f in dict.fromkeys(found)]


def theme_of(path: Path) -> str:
    try:
        rel = path.resolve().relative_to(NOTEBOOKS)
    except ValueError:
        return path.parent.name
    return rel.parts[0] if len(rel.parts) > 1 else "start"


def title_of(nb: nbformat.NotebookNode) -> str:
    """The first markdown heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def question_of(nb: nbformat.NotebookNode) -> str:
    """The question a notebook asks: the paragraph of its first markdown cells that starts
    with "**Question", else the first one that contains a question mark."""
    paras = [p.strip() for c in nb.cells[:3] if c.cell_type == "markdown" for p in c.source.split("\n\n")]
    flagged = [p for p in paras if p.startswith("**Question")]
    asked = [p for p in paras if "?" in p and not p.startswith("#")]
    text = re.sub(r"^\*\*Questions?\W*\*\*\W*", "", (flagged or asked or [""])[0])
    text = " ".join(text.replace("**", "").split())
    return text[:1].upper() + text[1:]


def parameters_of(path: Path) -> dict[str, dict[str, Any]]:
    """The notebook's ``parameters`` cell: name -> {"default", "type"} (via papermill)."""
    import papermill

    return {name: {"default": p["default"], "type": p["inferred_type_name"], "help": p["help"]}
            for name, p in papermill.inspect_notebook(str(path)).items()}


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` strings to a dict; values parse as Python literals, else stay strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"bad parameter {pair!r}: write NAME=VALUE, e.g. -p SEED=1")
        try:
            params[name] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[name] = raw
    return params


def _literal(default: str) -> Any:
    try:
        return ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return None


def check_params(path: Path, params: dict[str, Any]) -> None:
    """Every parameter must exist in the notebook's parameters cell with a compatible type."""
    declared = parameters_of(path)
    for name, value in params.items():
        if name not in declared:
            raise UsageError(
                f"{path.name} has no parameter {name!r}; it has: {', '.join(declared) or 'none'}"
            )
        default = _literal(declared[name]["default"])
        if default is None or isinstance(value, type(default)):
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            continue
        raise UsageError(
            f"parameter {name}={value!r} for {path.name}: expected {type(default).__name__} "
            f"like its default {declared[name]['default']}"
        )


@contextmanager
def _kernel_env(**values: str):
    """Set environment variables for the kernels started inside the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _to_html(nb: nbformat.NotebookNode) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return body


def execute(path: Path, scale: str, params: dict[str, Any], out: Path) -> Result:
    """Execute one notebook with papermill; write its .ipynb and .html under ``out``."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    theme = theme_of(path)
    out_nb = out / theme / path.name
    out_html = out_nb.with_suffix(".html")
    if out_nb.resolve() == path.resolve():
        raise UsageError(f"output {out_nb} would overwrite the source notebook; choose another --out")
    source = nbformat.read(path, as_version=4)
    status, error = "ok", ""
    start = time.perf_counter()
    with _kernel_env(NBSUPPORT_HEADLESS="1", NBSUPPORT_SCALE=scale), tempfile.TemporaryDirectory() as tmp:
        tmp_nb = Path(tmp) / path.name
        try:
            papermill.execute_notebook(
                str(path), str(tmp_nb), parameters={"SCALE": scale, **params},
                kernel_name="python3", progress_bar=False, cwd=str(path.parent),
            )
        except PapermillExecutionError as exc:
            status, error = "failed", f"{exc.ename}: {exc.evalue}"
        except Exception as exc:  # kernel died, bad notebook JSON, ...
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        if tmp_nb.exists():
            nb = nbformat.read(tmp_nb, as_version=4)
            nb.metadata.setdefault("nbsupport", {}).update(
                {"scale": scale, "seconds": round(seconds, 2), "status": status, "error": error})
            atomic_write(out_nb, nbformat.writes(nb))
            atomic_write(out_html, _to_html(nb))
            claims, checks, records = read_claims(out_nb), read_checks(out_nb), read_records(out_nb)
            if status == "ok" and not all(k["ok"] for k in checks):
                status = "check failed"
                error = "failed checks: " + ", ".join(k["name"] for k in checks if not k["ok"])
        else:
            claims, checks, records = [], [], {}
    return Result(
        notebook=str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), theme=theme,
        title=title_of(source), scale=scale, status=status, seconds=round(seconds, 2),
        output=str(out_nb.relative_to(out)) if out_nb.exists() else "",
        html=str(out_html.relative_to(out)) if out_html.exists() else "",
        error=error, claims=claims, checks=checks, records=records,
    )


def run(paths: list[str] | None = None, scale: str = "standard", params: dict[str, Any] | None = None,
        jobs: int = 1, out: str | Path = "outputs", progress: bool = True) -> list[Result]:
    """Execute notebooks and write the report; returns one :class:`Result` per notebook."""
    params = dict(params or {})
    scale = str(params.pop("SCALE", scale))
    try:
        check_scale(scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    notebooks = discover(paths)
    for nb in notebooks:
        check_params(nb, params)
    out = Path(out).resolve()
    results: list[Result] = []
    bar = tqdm(total=len(notebooks), desc=f"notebooks ({scale})", disable=not progress)
    if jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(max_workers=jobs, initializer=_share_cores, initargs=(threads,)) as pool:
            futures = [pool.submit(execute, nb, scale, params, out) for nb in notebooks]
            for fut in futures:
                results.append(fut.result())
                bar.update()
    else:
        for nb in notebooks:
            bar.set_postfix_str(nb.name)
            results.append(execute(nb, scale, params, out))
            bar.update()
    bar.close()
    write_report([asdict(r) for r in results], out)
    return results


def _share_cores(threads: int) -> None:
    """Parallel notebooks split the cores: oversubscribed OpenMP threads slow torch many times over."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def list_notebooks(paths: list[str] | None = None) -> list[dict[str, Any]]:
    """Every notebook: path, theme, title, question and its parameters with defaults."""
    return [
        {"notebook": str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p), "theme": theme_of(p),
         "title": title_of(nb := nbformat.read(p, as_version=4)), "question": question_of(nb),
         "parameters": {k: v["default"] for k, v in parameters_of(p).items()}}
        for p in discover(paths)
    ]


def main_run(args) -> int:
    results = run(args.paths, scale=args.scale, params=parse_params(args.param or []), jobs=args.jobs,
                  out=args.out)
    failed = [r for r in results if r.status != "ok"]
    for r in results:
        verdicts = Counter(c["verdict"] for c in r.claims)
        counts = ", ".join(f"{n} {v}" for v, n in verdicts.items()) or "no claims"
        line = f"{r.status:12s} {r.seconds:7.1f}s  {r.notebook}  {counts}; {len(r.checks)} checks"
        print(line + (f"  -- {r.error.splitlines()[0] if r.error else ''}" if r.status != "ok" else ""))
    print(f"report: {Path(args.out) / 'index.html'}")
    return 1 if failed else 0


def main_list(args) -> int:
    for e in list_notebooks(args.paths):
        params = ", ".join(f"{k}={v}" for k, v in e["parameters"].items())
        print(f"{e['notebook']}  [{e['theme']}]  {e['title']}\n    {params}")
    return 0


def add_arguments(sub) -> None:
    p = sub.add_parser("run", help="execute notebooks headless and write the report")
    p.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/)")
    p.add_argument("--scale", default="standard", help=f"one of {', '.join(SCALES)}")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("--jobs", type=int, default=1, help="notebooks run in parallel")
    p.add_argument("--out", default="outputs", help="output folder (default: outputs/)")
    p.set_defaults(func=main_run)
    q = sub.add_parser("list", help="list notebooks with their parameters")
    q.add_argument("paths", nargs="*")
    q.set_defaults(func=main_list)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nbsupport", description="Warm Start notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    add_arguments(sub)
    for extra in EXTRA_COMMANDS:
        __import__(extra, fromlist=["add_arguments"]).add_arguments(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


#: Modules that add subcommands (each defines ``add_arguments(subparsers)``).
EXTRA_COMMANDS: list[str] = ["nbsupport.sweep"]
