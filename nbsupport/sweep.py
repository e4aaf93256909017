"""Parameter sweeps: one notebook over a grid of parameters, locally or on a Dask cluster.

``sweep(notebook, {"LR": [3e-4, 1e-3], "SEED": [0, 1]}, scale="smoke")`` executes the notebook
once per grid point (the Cartesian product, in the order given) with the runner's
:func:`nbsupport.runner.execute`, and returns a DataFrame with one row per point: its
parameters, status, wall time and every recorded value (claims as ``claim:<name>`` columns).
``python -m nbsupport sweep NOTEBOOK -p LR=3e-4,1e-3 -p SEED=0,1`` does the same from a shell.

Executors: ``local`` runs a process pool of ``jobs`` workers; ``dask`` submits each point to
dask.distributed: an embedded ``LocalCluster`` of ``jobs`` workers, or the scheduler at
``address`` whose workers run the same environment (nbsupport importable; the notebook's
source travels with each task, so workers need not share a file system).

The sweep folder holds ``points/<point>/`` (executed ``.ipynb``, ``.html`` and ``point.json``)
for each point, ``results.csv`` (and ``results.parquet`` when pyarrow is installed) and
``index.html``: the table and a plotly figure of one record against one parameter. Each file
is written atomically by the process that called ``sweep``, ``point.json`` last, as soon as a
point finishes; so an interrupted sweep (Ctrl-C) keeps every finished point and leaves no
half-written file, and a rerun skips each point whose ``point.json`` says ok for the same
key: a hash of the notebook's cells, the scale and the parameters (``force=True`` reruns).
A failing point is recorded with its error and the others go on.
"""

from __future__ import annotations

import ast
import hashlib
import html
import itertools
import json
import math
import os
import re
import signal
import socket
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
from tqdm.auto import tqdm

from nbsupport.atomic import atomic_write as _atomic_write
from nbsupport.record import effect_text
from nbsupport.report import fmt as _fmt
from nbsupport.runner import (
    ROOT,
    UsageError,
    check_params,
    discover,
    execute,
    parse_params,
)
from nbsupport.scales import SCALES, check_scale

META = ("SCALE", "status", "seconds", "error")


@dataclass(frozen=True)
class Point:
    """One grid point: its position in the grid, scale, parameters and resume key."""

    index: int
    scale: str
    params: dict[str, Any]
    key: str

    @property
    def name(self) -> str:
        """Folder name under ``points/``: readable parameters, then the key."""
        slug = "_".join([self.scale] + [f"{k}={v}" for k, v in self.params.items()])
        return f"{re.sub(r'[^A-Za-z0-9=.+_-]+', '-', slug)[:80]}-{self.key}"


# --- the grid -------------------------------------------------------------------------------


def parse_grid(pairs: list[str]) -> dict[str, list[Any]]:
    """``["LR=3e-4,1e-3", "SEED=0,1"]`` -> ``{"LR": [0.0003, 0.001], "SEED": [0, 1]}``.

    Values parse as Python literals (a comma-separated literal gives several values), else
    they are split on commas and each one parses like ``-p`` of ``nbsupport run``."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name.isidentifier():
            raise UsageError(f"bad grid {pair!r}: write NAME=V1,V2,..., e.g. -p SEED=0,1,2")
        if name in grid:
            raise UsageError(f"parameter {name} given twice: list all its values in one -p {name}=...")
        if not raw:
            raise UsageError(f"-p {name}= has no values: give at least one, e.g. -p {name}=0,1")
        try:
            parsed = ast.literal_eval(raw)
            grid[name] = list(parsed) if isinstance(parsed, tuple) else [parsed]
        except (ValueError, SyntaxError):
            items = [item.strip() for item in raw.split(",")]
            if "" in items:
                raise UsageError(f"-p {name}={raw}: empty value between commas") from None
            grid[name] = [parse_params([f"{name}={item}"])[name] for item in items]
    return grid


def _values(name: str, values: Any) -> list[Any]:
    """A grid entry as a list of plain Python values (a scalar is one value)."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        values = [values]
    out = [v.item() if hasattr(v, "item") and not isinstance(v, (list, dict)) else v for v in values]
    if not out:
        raise UsageError(f"parameter {name} has an empty list of values")
    keys = [json.dumps(v, sort_keys=True, default=repr) for v in out]
    if len(set(keys)) < len(keys):
        raise UsageError(f"parameter {name} repeats a value: {out}")
    return out


def check_grid(path: Path, grid: dict[str, list[Any]]) -> None:
    """Raise one :class:`UsageError` for an unknown parameter, an empty list of values or a
    value whose type does not match the parameter's default (checked by the runner)."""
    if not grid:
        raise UsageError("empty grid: give at least one -p NAME=V1,V2")
    for value in grid.get("SCALE", []):
        if value not in SCALES:
            raise UsageError(f"unknown scale {value!r} in the grid: choose from {', '.join(SCALES)}")
    others = {k: v for k, v in grid.items() if k != "SCALE"}
    for i in range(max((len(v) for v in others.values()), default=0)):
        check_params(path, {k: v[i] for k, v in others.items() if i < len(v)})


def notebook_digest(path: Path) -> str:
    """Hash of the notebook's cell types and sources (outputs and metadata do not count)."""
    nb = nbformat.read(path, as_version=4)
    cells = [[c.cell_type, c.source] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def grid_points(grid: dict[str, list[Any]], scale: str, digest: str) -> list[Point]:
    """The Cartesian product of ``grid`` (first parameter varies slowest)."""
    names = list(grid)
    points = []
    for i, values in enumerate(itertools.product(*grid.values())):
        params = dict(zip(names, values, strict=True))
        point_scale = str(params.pop("SCALE", scale))
        blob = json.dumps([digest, point_scale, params], sort_keys=True, default=repr)
        points.append(Point(i, point_scale, params, hashlib.sha256(blob.encode()).hexdigest()[:12]))
    return points


# --- one point, on a worker -------------------------------------------------------------------


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Execute one grid point (on any worker) and return its outcome with the executed
    notebook's text, so the caller writes every file. The notebook runs from its own folder
    when the worker has the same notebook there, else from a temporary copy of the source."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nbsweep-") as tmp:
        path = next((p for p in (Path(task["notebook"]), ROOT / task["relpath"])
                     if p.is_file() and notebook_digest(p) == task["digest"]), None)
        if path is None:
            path = Path(tmp) / "src" / Path(task["notebook"]).name
            path.parent.mkdir()
            path.write_text(task["source"], encoding="utf-8")
        try:
            res = execute(path, task["scale"], task["params"], Path(tmp) / "out")
        except Exception as exc:  # noqa: BLE001 - any failure belongs to this point only
            return _failed(task, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        out = Path(tmp) / "out"
        text = {k: (out / getattr(res, k)).read_text(encoding="utf-8") if getattr(res, k) else ""
                for k in ("output", "html")}
    return {"key": task["key"], "status": res.status, "error": res.error, "seconds": res.seconds,
            "records": res.records, "claims": res.claims, "ipynb": text["output"],
            "html": text["html"], "worker": socket.gethostname()}


def _failed(task: dict[str, Any], error: str, seconds: float = 0.0) -> dict[str, Any]:
    return {"key": task["key"], "status": "failed", "error": error, "seconds": round(seconds, 2),
            "records": {}, "claims": [], "ipynb": "", "html": "", "worker": ""}


def _init_local_worker(threads: int | None) -> None:
    # Ctrl-C is the parent's to handle: it stops the pool; kernels exit with their worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


# --- executors: yield outcomes as points finish -----------------------------------------------


def _local(tasks: list[dict[str, Any]], jobs: int) -> Iterator[dict[str, Any]]:
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_init_local_worker, initargs=(threads,))
    try:
        futures = {pool.submit(run_point, t): t for t in tasks}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died: this point failed
                yield _failed(futures[fut], f"{type(exc).__name__}: {exc}")
    except BaseException:  # Ctrl-C or the caller stopped: end the workers, keep what finished
        terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
        for proc in ([] if terminate else list((pool._processes or {}).values())):
            proc.terminate()
        if terminate:
            terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _dask(tasks: list[dict[str, Any]], jobs: int, address: str | None,
          cluster_kwargs: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError:
        raise UsageError("the dask executor needs dask.distributed: pip install distributed") from None
    cluster = None
    if address:
        try:
            client = Client(address, timeout="20s")
        except OSError as exc:
            raise UsageError(f"no dask scheduler reachable at {address}: {exc}") from None
    else:
        kwargs = {"n_workers": jobs, "threads_per_worker": 1, "processes": True,
                  "dashboard_address": None, **(cluster_kwargs or {})}
        cluster = LocalCluster(**kwargs)
        client = Client(cluster)
    futures = []
    try:
        run = uuid.uuid4().hex[:8]  # this sweep's tasks only, even on a shared scheduler
        futures = [client.submit(run_point, t, key=f"nbsweep-{t['key']}-{run}") for t in tasks]
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for fut in dask_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # noqa: BLE001 - worker lost, task error: this point failed
                yield _failed(by_key[fut.key], f"{type(exc).__name__}: {exc}")
    finally:
        client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()


def _execute(executor: str, tasks: list[dict[str, Any]], jobs: int, address: str | None,
             cluster_kwargs: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    if tasks:
        yield from (_local(tasks, jobs) if executor == "local"
                    else _dask(tasks, jobs, address, cluster_kwargs))


# --- files ------------------------------------------------------------------------------------


def _save(point: Point, outcome: dict[str, Any], out: Path, stem: str) -> dict[str, Any]:
    """Write a finished point's notebook, HTML and (last) point.json; return point.json."""
    folder = out / "points" / point.name
    meta = {"key": point.key, "index": point.index, "scale": point.scale, "params": point.params,
            **{k: outcome[k] for k in ("status", "error", "seconds", "records", "claims", "worker")},
            "point": f"points/{point.name}", "output": "", "html": ""}
    for kind, suffix in (("ipynb", ".ipynb"), ("html", ".html")):
        if outcome[kind]:
            _atomic_write(folder / f"{stem}{suffix}", outcome[kind])
            meta["output" if kind == "ipynb" else "html"] = f"points/{point.name}/{stem}{suffix}"
    _atomic_write(folder / "point.json", json.dumps(meta, indent=1))
    return meta


def _stored(point: Point, out: Path) -> dict[str, Any] | None:
    """point.json of an earlier run of this exact point, else None."""
    try:
        meta = json.loads((out / "points" / point.name / "point.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("key") == point.key else None


def _finished(point: Point, out: Path) -> dict[str, Any] | None:
    """point.json of an earlier run of this exact point that succeeded, else None."""
    meta = _stored(point, out)
    ok = meta is not None and meta.get("status") == "ok"
    return meta if ok and (out / meta.get("output", "-")).is_file() else None


def table(metas: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """One row per point: grid parameters, SCALE, status, seconds, error, records, claims."""
    rows = []
    for m in sorted(metas, key=lambda m: m["index"]):
        row = {**{k: m["params"].get(k) for k in names if k != "SCALE"}, "SCALE": m["scale"],
               "status": m["status"], "seconds": m["seconds"], "error": m["error"]}
        for name, value in m["records"].items():
            row["record:" + name if name in row else name] = value
        for c in m["claims"]:
            row[f"claim:{c['name']}"] = c["verdict"]
            row[f"effect:{c['name']}"] = f"{effect_text(c)} n={c['n']}"
        row["point"] = m["html"] or m["output"] or m["point"]
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*names, *META, "point"])


def _object_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype.kind == "O"]


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """Lists and dicts as JSON text, for CSV and Parquet."""
    flat = df.copy()
    for col in _object_columns(flat):
        flat[col] = flat[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    return flat


def write_results(df: pd.DataFrame, out: Path, title: str, plot: tuple[str, str] | None,
                  grid: dict[str, list[Any]]) -> None:
    """results.csv, results.parquet (with pyarrow) and index.html, each atomically."""
    flat = _flat(df)
    _atomic_write(out / "results.csv", flat.to_csv(index=False))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        try:
            data = flat.to_parquet(index=False)
        except Exception:  # noqa: BLE001 - a column mixes types: store it as text
            data = flat.astype({c: str for c in _object_columns(flat)}).to_parquet(index=False)
        _atomic_write(out / "results.parquet", data)
    _atomic_write(out / "index.html", render(df, title, plot, grid))


def default_plot(df: pd.DataFrame, grid: dict[str, list[Any]]) -> tuple[str, str] | None:
    """The first numeric record that varies across points (else the first numeric record)
    against the first parameter that takes several values."""
    params = [k for k, v in grid.items() if len(v) > 1] or list(grid)
    skip = set(grid) | set(META) | {"point"}
    numeric = []
    for col in df.columns:
        if col not in skip and not col.startswith(("claim:", "effect:")):
            values = pd.to_numeric(df.loc[df.status == "ok", col], errors="coerce").dropna()
            if len(values):
                numeric.append((values.nunique() > 1, col))
    if not numeric:
        return None
    return next((col for varies, col in numeric if varies), numeric[0][1]), params[0]


def figure(df: pd.DataFrame, record: str, param: str, grid: dict[str, list[Any]]):
    """``record`` against ``param``, one line per combination of the other varying parameters."""
    import plotly.graph_objects as go

    from nbsupport.viz import COLORS, style

    ok = df[df.status == "ok"].copy() if record in df else df.iloc[:0]
    ok["_y"] = pd.to_numeric(ok[record], errors="coerce") if record in ok else []
    ok = ok[ok["_y"].notna()]
    others = [k for k, v in grid.items() if len(v) > 1 and k != param]
    fig = go.Figure()
    groups = ok.groupby(others, sort=False) if others else [((), ok)]
    for i, (values, rows) in enumerate(groups):
        values = values if isinstance(values, tuple) else (values,)
        label = ", ".join(f"{k}={v}" for k, v in zip(others, values, strict=True)) or record
        rows = rows.sort_values(param)
        fig.add_trace(go.Scatter(x=rows[param].tolist(), y=rows["_y"].tolist(), mode="lines+markers",
                                 name=label, line=dict(color=COLORS[i % len(COLORS)])))
    xs = pd.to_numeric(ok[param], errors="coerce") if param in ok else pd.Series(dtype=float)
    log_x = bool(len(xs) and xs.notna().all() and xs.min() > 0 and xs.max() / xs.min() >= 50)
    return style(fig, title=f"{record} against {param}", x=param, y=record, log_x=log_x)


def render(df: pd.DataFrame, title: str, plot: tuple[str, str] | None,
           grid: dict[str, list[Any]]) -> str:
    """index.html: summary, the figure (plotly.js inline, viewable offline) and the table."""
    plot = plot or default_plot(df, grid)
    fig_html = ""
    if plot and plot[0] in df:
        fig_html = figure(df, *plot, grid).to_html(full_html=False, include_plotlyjs=True)
    elif plot:
        fig_html = f"<p class='bad'>No point recorded {html.escape(plot[0])}: nothing to plot.</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for col, v in r.items():
            if col == "point":
                cells.append(f'<td><a href="{html.escape(str(v))}">notebook</a></td>')
            elif col == "status":
                cells.append(f'<td class="{"ok" if v == "ok" else "bad"}">{html.escape(str(v))}</td>')
            else:
                empty = v is None or (isinstance(v, float) and math.isnan(v))
                cells.append(f"<td>{'' if empty else _fmt(v)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    failed = int((df.status != "ok").sum()) if len(df) else 0
    dims = " × ".join(f"{html.escape(k)} ({len(v)})" for k, v in grid.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Sweep: {html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 6px}}.ok{{color:#17692c}}.bad{{color:#b00020}}</style>
</head><body><h1>Sweep: {html.escape(title)}</h1>
<p>Grid {dims}: {len(df)} points, {failed} failed. Files: <a href="results.csv">results.csv</a>.</p>
{fig_html}
<table><tr>{head}</tr>
{"".join(rows)}
</table></body></html>
"""


# --- the sweep --------------------------------------------------------------------------------


def _parse_plot(plot: str | None, grid: dict[str, list[Any]]) -> tuple[str, str] | None:
    if not plot:
        return None
    record, sep, param = plot.rpartition(":")
    if not sep or not record or not param:
        raise UsageError(f"--plot {plot!r}: write RECORD:PARAMETER, e.g. --plot val_loss:LR")
    if param not in grid:
        raise UsageError(f"--plot {plot!r}: {param!r} is not a swept parameter ({', '.join(grid)})")
    return record, param


def sweep(notebook: str | Path, grid: Mapping[str, Any], *, scale: str = "standard",
          jobs: int | None = None, executor: str | None = None, address: str | None = None,
          out: str | Path | None = None, force: bool = False, plot: str | None = None,
          progress: bool = True, cluster_kwargs: dict[str, Any] | None = None) -> pd.DataFrame:
    """Run ``notebook`` once per point of ``grid`` (name -> values) and return the table.

    ``executor`` is ``"local"`` (a pool of ``jobs`` processes, the default) or ``"dask"``
    (the scheduler at ``address``, else an embedded LocalCluster of ``jobs`` workers, made
    with ``cluster_kwargs``). Points already finished with status ok in ``out`` (default
    ``outputs/sweeps/<notebook name>``) are read back instead of rerun unless ``force``.
    ``plot="record:PARAM"`` picks the figure of index.html. The DataFrame's ``attrs`` hold
    ``out``, ``ran`` and ``skipped`` (point counts). Raises :class:`UsageError` before
    running anything for a bad grid; a failing point only sets its row's status."""
    paths = discover([str(notebook)])
    if len(paths) != 1:
        raise UsageError(f"sweep takes one notebook; {notebook} holds {len(paths)}")
    path = paths[0]
    try:
        check_scale(scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    grid = {name: _values(name, values) for name, values in grid.items()}
    check_grid(path, grid)
    chosen = _parse_plot(plot, grid)
    executor = executor or ("dask" if address else "local")
    if executor not in ("local", "dask"):
        raise UsageError(f"unknown executor {executor!r}: choose local or dask")
    if address and executor != "dask":
        raise UsageError("--address names a dask scheduler: use it with --executor dask")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out or Path("outputs") / "sweeps" / path.stem).resolve()
    if out == path.parent.resolve():
        raise UsageError(f"--out {out} is the notebook's own folder; choose another")

    digest = notebook_digest(path)
    points = grid_points(grid, scale, digest)
    done = {} if force else {p.key: m for p in points if (m := _finished(p, out))}
    todo = [p for p in points if p.key not in done]
    jobs = min(jobs or max(1, (os.cpu_count() or 1) // 2), max(1, len(todo)))
    relpath = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    source = path.read_text(encoding="utf-8")
    tasks = [{"key": p.key, "notebook": str(path), "relpath": relpath, "source": source,
              "digest": digest, "scale": p.scale, "params": p.params} for p in todo]
    by_key = {p.key: p for p in points}
    bar = tqdm(total=len(points), initial=len(done), desc=f"sweep {path.stem}", disable=not progress)
    results = _execute(executor, tasks, jobs, address, cluster_kwargs)
    try:
        for outcome in results:
            point = by_key[outcome["key"]]
            _save(point, outcome, out, path.stem)
            if outcome["status"] != "ok":
                bar.write(f"failed {point.name}: {outcome['error'].splitlines()[0] if outcome['error'] else ''}")
            bar.update()
    finally:
        results.close()
        bar.close()
        # every point finished now or earlier, read back from its point.json
        df = table([{**m, "index": p.index} for p in points if (m := _stored(p, out))], list(grid))
        write_results(df, out, path.name, chosen, grid)
    df.attrs.update(out=str(out), ran=len(todo), skipped=len(done))
    return df


# --- command line -----------------------------------------------------------------------------


def main_sweep(args) -> int:
    grid = parse_grid(args.param or [])
    try:
        df = sweep(args.notebook, grid, scale=args.scale, jobs=args.jobs, executor=args.executor,
                   address=args.address, out=args.out, force=args.force, plot=args.plot)
    except KeyboardInterrupt:
        print("interrupted: finished points are kept; run the same command again to resume",
              file=sys.stderr)
        return 130
    shown = [c for c in df.columns if c not in ("error", "point")]
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        print(df[shown].to_string(index=False))
    failed = df[df.status != "ok"]
    for _, r in failed.iterrows():
        print(f"failed: {r.point}: {str(r.error).splitlines()[0] if r.error else ''}")
    print(f"{len(df)} points: {len(df) - len(failed)} ok, {len(failed)} failed "
          f"({df.attrs['skipped']} finished earlier, skipped)")
    print(f"results: {Path(df.attrs['out']) / 'results.csv'}\nreport: {Path(df.attrs['out']) / 'index.html'}")
    return 1 if len(failed) else 0


def add_arguments(sub) -> None:
    p = sub.add_parser("sweep", help="run one notebook over a parameter grid (local or Dask)",
                       description="Run NOTEBOOK once per point of the grid given by -p NAME=V1,V2,... "
                       "and collect every run's records into results.csv and index.html.")
    p.add_argument("notebook", help="the .ipynb to sweep")
    p.add_argument("-p", "--param", action="append", metavar="NAME=V1,V2",
                   help="a parameter and its values (repeat for a grid)")
    p.add_argument("--scale", default="standard", help=f"one of {', '.join(SCALES)}")
    p.add_argument("--jobs", type=int, default=None,
                   help="points run at once (default: half the CPU cores)")
    p.add_argument("--executor", choices=("local", "dask"), default=None,
                   help="local process pool (default) or dask.distributed")
    p.add_argument("--address", help="dask scheduler, e.g. tcp://HOST:8786 (default: a LocalCluster)")
    p.add_argument("--out", help="sweep folder (default: outputs/sweeps/<notebook name>)")
    p.add_argument("--force", action="store_true", help="rerun points that already finished")
    p.add_argument("--plot", metavar="RECORD:PARAM", help="figure of a record against a parameter")
    p.set_defaults(func=main_sweep)


class _CallableModule(types.ModuleType):
    """``nbsupport.sweep`` is this module once it is imported (Python sets the package
    attribute), so calling the module calls :func:`sweep`: ``nbsupport.sweep(nb, grid)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
