"""Batch execution of notebooks with papermill, and the HTML report of their findings.

``run(paths, scale=..., params=..., jobs=..., out=...)`` executes each notebook headless with
the current environment's kernel, writes ``<out>/<theme>/<name>.ipynb`` and ``.html`` (plotly
embedded, viewable offline) atomically, keeps going past a failing notebook, and updates
``<out>/index.html`` and ``<out>/index.json`` after every notebook: each notebook with its
scale, wall time, status and claims. Source notebooks are only read. Each notebook runs in
its own process (:mod:`nbsupport.workers`), so a time limit or Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import ast
import errno
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import nbformat
from tqdm.auto import tqdm

from nbsupport.atomic import atomic_write, locked
from nbsupport.record import read_checks, read_claims, read_records
from nbsupport.report import write_report
from nbsupport.scales import SCALES, check_scale
from nbsupport.workers import Interrupted, interrupt_on_signals, run_each

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


class UsageError(ValueError):
    """A bad path, scale or parameter: reported as one line, exit code 2."""


#: Write errors that no other notebook's output would escape: the runner stops (the report keeps
#: what finished). Any other (a theme folder that is a file or read-only) fails one notebook.
STOP_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


class WriteError(Exception):
    """A file under the output folder could not be written: ``path`` and the ``OSError``."""

    def __init__(self, path: Path, exc: OSError):
        super().__init__(path, exc)
        self.path, self.exc, self.errno = path, exc, exc.errno

    def __str__(self) -> str:
        return describe_os_error(self.exc, self.path)


def describe_os_error(exc: OSError, path: Path | str | None = None) -> str:
    """One line: the path, what went wrong and the errno (``cannot write X: No space left on
    device (errno 28 ENOSPC)``)."""
    where = str(path or exc.filename or "?")
    if exc.filename and path and str(exc.filename) != str(path) and ".tmp" not in str(exc.filename):
        where += f" ({exc.filename})"
    code = f"errno {exc.errno} {errno.errorcode.get(exc.errno, '')}".strip() if exc.errno else type(exc).__name__
    return f"cannot write {where}: {exc.strerror or exc} ({code})"


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
    warning: str = ""
    claims: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)


def notebook_key(path: Path) -> str:
    """How the report names a notebook: its path relative to the repository, else as given."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


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


def _number(x: float | None) -> str:
    return "" if x is None else str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Rule:
    """What a parameter of this name may hold, whatever its default (``None`` included): a
    type and an inclusive range (``low_open``: the low end excluded)."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def text(self) -> str:
        name, low, high = self.kind.__name__, _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None and not self.low_open:
            return f"{name} from {low} to {high}"
        ends = [f"{'>' if self.low_open else '>='} {low}" if self.low is not None else "",
                f"<= {high}" if self.high is not None else ""]
        return " ".join([name, " and ".join(e for e in ends if e)]).strip()

    def admits(self, value: Any) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


#: Parameters with the same meaning in every notebook: counts of seeds and signals, the first
#: seed, the learning rate. They hold for any default, so a notebook whose default is ``None``
#: (the scale's preset) is checked too.
RULES: dict[str, Rule] = {
    "SEEDS": Rule(int, 1, 1000),
    "SIGNALS": Rule(int, 1, 100_000),
    "SEED": Rule(int, 0, 2**31 - 1),
    "SEED_BASE": Rule(int, 0, 2**31 - 1),
    "LR": Rule(float, 0, 10, low_open=True),
}
TYPES = {t.__name__: t for t in (int, float, str, bool, list, dict, tuple)}


def declared_type(annotation: str) -> type | None:
    """The type papermill read from an annotation or a ``# type:`` comment of the parameters
    cell (``int``, ``Optional[int]``, ``float | None``); None when there is none."""
    text = re.sub(r"\s", "", annotation or "")
    text = re.sub(r"^(typing\.)?Optional\[(.*)\]$", r"\2", text)
    names = [t for t in text.split("|") if t not in ("None", "NoneType")]
    return TYPES.get(names[0].split("[")[0]) if len(names) == 1 else None


def _fits(value: Any, kind: type) -> bool:
    """``value`` is a ``kind``; an int is not a bool here, although Python says it is."""
    return isinstance(value, bool) == (kind is bool) and isinstance(value, kind)


def check_params(path: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Every parameter must exist in the notebook's parameters cell with a compatible type;
    returns ``params`` with ints widened to float where a float is expected (so 1 and 1.0
    are one value). The expected type is the one declared in the cell (``SEEDS = None  #
    type: int`` or an annotation), else that of :data:`RULES` for the name, else that of the
    default; ``None`` is accepted where the default is ``None``. :data:`RULES` also give
    ranges (``SEEDS`` from 1 to 1000)."""
    declared = parameters_of(path)
    checked = dict(params)
    for name, value in params.items():
        if name not in declared:
            raise UsageError(
                f"{path.name} has no parameter {name!r}; it has: {', '.join(declared) or 'none'}"
            )
        default = _literal(declared[name]["default"])
        rule = RULES.get(name)
        kind = declared_type(declared[name]["type"]) or (rule.kind if rule else None)
        if kind is None and default is not None:
            kind = type(default)
        if kind is None or (value is None and default is None):
            continue
        if kind is float and _fits(value, int):
            value = checked[name] = float(value)
        if not _fits(value, kind) or (kind is float and not math.isfinite(value)):
            like = f"like its default {declared[name]['default']}" if default is not None else \
                f"(default None: {declared[name]['help'].strip() or 'the preset'})"
            raise UsageError(f"parameter {name}={value!r} for {path.name}: expected "
                             f"{rule.text() if rule else kind.__name__} {like}"[:300])
        if rule and rule.kind is kind and not rule.admits(value):
            raise UsageError(f"parameter {name}={value!r} for {path.name}: expected {rule.text()}")
    return checked


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


def _to_html(nb: nbformat.NotebookNode, out: Path | None = None) -> str:
    """The page of an executed notebook; its figures use ``<out>/plotly.min.js`` (written once)."""
    from nbsupport.export import notebook_html

    return notebook_html(nb, out)


#: The warning of a notebook without a cell tagged ``parameters``.
NO_PARAMETERS = ("no cell tagged 'parameters': SCALE and -p were set in a cell added at the top, which the "
                 "notebook's own assignments override, so the scale shown may not be the one it ran at")


def has_parameters_cell(nb: nbformat.NotebookNode) -> bool:
    """Whether a code cell is tagged ``parameters`` (where papermill puts the overrides)."""
    return any(c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def execute(path: Path, scale: str, params: dict[str, Any], out: Path,
            cell_timeout: float | None = None) -> Result:
    """Execute one notebook with papermill; write its .ipynb and .html under ``out``. A cell
    that runs longer than ``cell_timeout`` seconds fails the notebook."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    theme = theme_of(path)
    out_nb = out / theme / path.name
    out_html = out_nb.with_suffix(".html")
    source = nbformat.read(path, as_version=4)
    status, error = "ok", ""
    warning = "" if has_parameters_cell(source) else NO_PARAMETERS
    start = time.perf_counter()
    with _kernel_env(NBSUPPORT_HEADLESS="1", NBSUPPORT_SCALE=scale), tempfile.TemporaryDirectory() as tmp:
        tmp_nb = Path(tmp) / path.name
        try:
            papermill.execute_notebook(
                str(path), str(tmp_nb), parameters={"SCALE": scale, **params},
                kernel_name="python3", progress_bar=False, cwd=str(path.parent),
                execution_timeout=cell_timeout,
            )
        except PapermillExecutionError as exc:
            status, error = "failed", f"{exc.ename}: {exc.evalue}"
        except Exception as exc:  # kernel died, bad notebook JSON, ...
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        if tmp_nb.exists():
            nb = nbformat.read(tmp_nb, as_version=4)
            nb.metadata.setdefault("nbsupport", {}).update(
                {"scale": scale, "seconds": round(seconds, 2), "status": status, "error": error,
                 **({"warning": warning} if warning else {})})
            atomic_write(out_nb, nbformat.writes(nb))
            atomic_write(out_html, _to_html(nb, out))
            claims, checks, records = read_claims(out_nb), read_checks(out_nb), read_records(out_nb)
            if status == "ok" and not all(k["ok"] for k in checks):
                status = "check failed"
                error = "failed checks: " + ", ".join(k["name"] for k in checks if not k["ok"])

        else:
            claims, checks, records = [], [], {}
    return Result(
        notebook=notebook_key(path), theme=theme,
        title=title_of(source), scale=scale, status=status, seconds=round(seconds, 2),
        output=str(out_nb.relative_to(out)) if out_nb.exists() else "",
        html=str(out_html.relative_to(out)) if out_html.exists() else "",
        error=error, warning=warning, claims=claims, checks=checks, records=records,
    )


def read_problem(path: Path) -> str:
    """Why ``path`` cannot be read as a notebook (one line), or "" when it can."""
    try:
        nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - invalid JSON, not a notebook, unreadable file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"cannot read {path.name} as a notebook: {type(exc).__name__}: {first}"[:300]
    return ""


def failed_result(path: Path, scale: str, error: str, seconds: float = 0.0) -> Result:
    """The report entry of a notebook that produced no executed notebook."""
    return Result(notebook=notebook_key(path),
                  theme=theme_of(path), title="", scale=scale, status="failed",
                  seconds=round(seconds, 2), output="", html="", error=error)


def check_out(out: str | Path, sources: list[Path] = (), folders: list[Path] = ()) -> Path:
    """The output folder, resolved, made and checked writable before anything runs; raises
    :class:`UsageError` for a file, a folder that cannot be made or written, an output path
    that is one of the ``sources``, or one inside notebooks/ or one of the source ``folders``
    (the executed copies would be taken for sources by the next run)."""
    out = Path(out).resolve()
    for folder in (NOTEBOOKS, *folders):
        folder = Path(folder).resolve()
        if out.is_relative_to(folder):
            raise UsageError(f"--out {out} lies inside the notebook folder {folder}: the executed copies would "
                             "be run as sources next time; choose a folder outside it (default: outputs/)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise UsageError(f"--out {out} is a file (or lies under one): give a folder") from None
    except NotADirectoryError:
        raise UsageError(f"--out {out} is a file (or lies under one): give a folder") from None
    except OSError as exc:
        raise UsageError(f"cannot write to --out {out} ({exc.strerror}): choose a writable folder") from None
    for src in sources:
        if (out / theme_of(src) / src.name).resolve() == src.resolve():
            raise UsageError(f"--out {out} would overwrite the source notebook {src.name}; choose another --out")
    return out


@dataclass
class Executed:
    """A notebook executed away from its output folder: the result and the files to save
    (path relative to the output folder -> text)."""

    result: Result
    files: dict[str, str]


def execute_captured(path: Path, scale: str, params: dict[str, Any],
                     cell_timeout: float | None = None) -> Executed:
    """:func:`execute` into a temporary folder; the caller saves the files with :func:`save`."""
    with tempfile.TemporaryDirectory(prefix="nbrun-") as tmp:
        res = execute(path, scale, params, Path(tmp), cell_timeout=cell_timeout)
        files = {rel: (Path(tmp) / rel).read_text(encoding="utf-8") for rel in (res.output, res.html) if rel}
    return Executed(res, files)


def save(executed: Executed, out: Path) -> Result:
    """Write an executed notebook's files under ``out`` (each atomically); returns its result.
    Raises :class:`WriteError` naming the file that could not be written."""
    for rel, text in executed.files.items():
        try:
            atomic_write(out / rel, text)
        except OSError as exc:
            raise WriteError(out / rel, exc) from None
    return executed.result


def save_or_fail(executed: Executed, out: Path) -> tuple[Result, WriteError | None]:
    """:func:`save`; a notebook whose files cannot be written becomes a failed result (with its
    claims and checks), and the error is returned when it should stop the run (a full disk)."""
    try:
        return save(executed, out), None
    except WriteError as exc:
        r = replace(executed.result, status="failed", error=str(exc), output="", html="")
        return r, exc if exc.errno in STOP_ERRNOS else None


def share_cores(jobs: int) -> int:
    """Cores each of ``jobs`` parallel notebooks may keep busy (``NBSUPPORT_WORKERS`` for its
    seed workers; each process runs one intra-op thread): they split the cores."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run(paths: list[str] | None = None, scale: str = "standard", params: dict[str, Any] | None = None,
        jobs: int = 1, out: str | Path = "outputs", progress: bool = True,
        timeout: float | None = None) -> list[Result]:
    """Execute notebooks and write the report; returns one :class:`Result` per notebook.

    Each notebook runs in its own process, ``jobs`` at a time; one that runs longer than
    ``timeout`` seconds is stopped and reported failed, as is one that cannot be read. The
    report is updated (under a lock, merged with the entries already there) after every
    notebook, so an interrupted run still lists what finished. Ctrl-C or SIGTERM stops the
    running notebooks and their kernels and raises :class:`~nbsupport.workers.Interrupted`."""
    params = dict(params or {})
    scale = str(params.pop("SCALE", scale))
    try:
        check_scale(scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout}")
    notebooks = discover(paths)
    results: list[Result] = []
    runnable: list[tuple[Path, dict[str, Any]]] = []
    for nb in notebooks:
        problem = read_problem(nb)
        if problem:
            results.append(failed_result(nb, scale, problem))
        else:
            runnable.append((nb, check_params(nb, params)))
    out = check_out(out, notebooks, [Path(p) for p in paths or [NOTEBOOKS] if Path(p).is_dir()])
    order = {str(nb): i for i, nb in enumerate(notebooks)}
    bar = tqdm(total=len(notebooks), initial=len(results), desc=f"notebooks ({scale})", disable=not progress)
    with interrupt_on_signals():
        if results:
            _report(results, out)
        tasks = [(nb, scale, p) for nb, p in runnable]
        with closing(run_each(execute_captured, tasks, jobs, timeout=timeout, threads=share_cores(jobs))) as done:
            for o in done:
                nb = runnable[o.index][0]
                stop = None
                if o.value is None:
                    r = failed_result(nb, scale, o.error, o.seconds)
                else:
                    r, stop = save_or_fail(o.value, out)
                results.append(r)
                try:
                    _report([r], out)
                except WriteError:
                    if stop is None:
                        raise
                bar.update()
                if stop is not None:  # the disk is full: what still runs would be lost too
                    raise stop
    bar.close()
    return sorted(results, key=lambda r: order[str(ROOT / r.notebook)])


def _report(results: list[Result], out: Path) -> None:
    """Merge ``results`` into the report under a lock: concurrent runners lose no entry. Raises
    :class:`WriteError` when the report cannot be written (the last one written stays)."""
    try:
        with locked(out / "index.json"):
            write_report([asdict(r) for r in results], out)
    except OSError as exc:
        raise WriteError(Path(exc.filename or out / "index.json"), exc) from None


def list_notebooks(paths: list[str] | None = None) -> list[dict[str, Any]]:
    """Every notebook: path, theme, title, question and its parameters with defaults; a
    notebook that cannot be read has an ``error`` instead."""
    entries = []
    for p in discover(paths):
        entry = {"notebook": notebook_key(p), "theme": theme_of(p)}
        problem = read_problem(p)
        if problem:
            entries.append({**entry, "title": "", "question": "", "parameters": {}, "error": problem})
            continue
        nb = nbformat.read(p, as_version=4)
        entries.append({**entry, "title": title_of(nb), "question": question_of(nb),
                        "parameters": {k: v["default"] for k, v in parameters_of(p).items()}})
    return entries


def main_run(args) -> int:
    results = run(args.paths, scale=args.scale, params=parse_params(args.param or []), jobs=args.jobs,
                  out=args.out, timeout=args.timeout, progress=sys.stderr.isatty())
    failed = [r for r in results if r.status != "ok"]
    for r in results:
        verdicts = Counter(c["verdict"] for c in r.claims)
        counts = ", ".join(f"{n} {v}" for v, n in verdicts.items()) or "no claims"
        line = f"{r.status:12s} {r.seconds:7.1f}s  {r.notebook}  {counts}; {len(r.checks)} checks"
        line += f"  -- {r.error.splitlines()[0] if r.error else ''}" if r.status != "ok" else ""
        print(line + (f"  (warning: {r.warning})" if r.warning else ""))
    print(f"report: {Path(args.out) / 'index.html'}")
    return 1 if failed else 0


def main_list(args) -> int:
    entries = list_notebooks(args.paths)
    for e in entries:
        if "error" in e:
            print(f"{e['notebook']}  [{e['theme']}]  UNREADABLE: {e['error']}")
            continue
        params = ", ".join(f"{k}={v}" for k, v in e["parameters"].items())
        print(f"{e['notebook']}  [{e['theme']}]  {e['title']}\n    {params}")
    return 1 if any("error" in e for e in entries) else 0


def add_arguments(sub) -> None:
    p = sub.add_parser("run", help="execute notebooks headless and write the report")
    p.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/)")
    p.add_argument("--scale", default="standard", help=f"one of {', '.join(SCALES)}")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("--jobs", type=int, default=1, help="notebooks run in parallel")
    p.add_argument("--out", default="outputs", help="output folder (default: outputs/)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop a notebook that runs longer and report it failed (default: no limit)")
    p.set_defaults(func=main_run, interrupted="notebooks that finished are in the report; the others did not run")
    q = sub.add_parser("list", help="list notebooks with their parameters")
    q.add_argument("paths", nargs="*")
    q.set_defaults(func=main_list, interrupted="stopped")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nbsupport", description="Warm Start notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    add_arguments(sub)
    for extra in EXTRA_COMMANDS:
        __import__(extra, fromlist=["add_arguments"]).add_arguments(sub)
    args = parser.parse_args(argv)
    try:
        with interrupt_on_signals():
            return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (WriteError, OSError) as exc:  # a full disk, a folder made read-only during the run
        text = str(exc) if isinstance(exc, WriteError) else describe_os_error(exc)
        print(f"error: {text}; stopped: {args.interrupted}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as Interrupted
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"interrupted by {signal.Signals(signum).name}: {args.interrupted}", file=sys.stderr)
        return 128 + signum


#: Modules that add subcommands (each defines ``add_arguments(subparsers)``).
EXTRA_COMMANDS: list[str] = ["nbsupport.sweep.cli", "nbsupport.registry", "nbsupport.replicate"]
