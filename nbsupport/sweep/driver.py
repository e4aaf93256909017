"""``sweep(notebook, grid, ...)``: check everything, run the points that are not done, save each."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import pandas as pd

from nbsupport.progress import progress as tqdm
from nbsupport.runner import NOTEBOOKS, ROOT, UsageError, check_out, discover, read_problem
from nbsupport.scales import check_scale
from nbsupport.sweep.executors import DaskExecutor, LocalExecutor
from nbsupport.sweep.grid import check_grid, grid_points, grid_values, notebook_digest
from nbsupport.sweep.outputs import finished_point, other_grid, save_point, update_results
from nbsupport.workers import interrupt_on_signals


def parse_plot(plot: str | None, grid: dict[str, list[Any]]) -> tuple[str, str] | None:
    """``"record:PARAM"`` -> ``("record", "PARAM")``; PARAM must be swept."""
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
          progress: bool = True, cluster_kwargs: dict[str, Any] | None = None,
          timeout: float | None = None) -> pd.DataFrame:
    """Run ``notebook`` once per point of ``grid`` (name -> values) and return the table.

    ``executor`` is ``"local"`` (a pool of ``jobs`` processes, the default) or ``"dask"``
    (the scheduler at ``address``, else an embedded LocalCluster of ``jobs`` workers, made
    with ``cluster_kwargs``). Points already finished with status ok in ``out`` (default
    ``outputs/sweeps/<notebook name>``) are read back instead of rerun unless ``force``. A
    folder holding finished points that this grid leaves out (another grid, another notebook)
    is refused unless ``force``: their rows would leave the table.
    ``plot="record:PARAM"`` picks the figure of index.html. ``timeout``: seconds a point may
    run before it is stopped and marked failed (on Dask: seconds per cell). The DataFrame's
    ``attrs`` hold ``out``, ``ran`` and ``skipped`` (point counts). Raises
    :class:`UsageError` before running anything for a bad grid, folder or scheduler; a
    failing point only sets its row's status. The results are rewritten after every point,
    so an interrupted sweep (Ctrl-C, SIGTERM: :class:`~nbsupport.workers.Interrupted`) keeps
    every finished point."""
    paths = discover([str(notebook)])
    if len(paths) != 1:
        raise UsageError(f"sweep takes one notebook; {notebook} holds {len(paths)}")
    path = paths[0]
    problem = read_problem(path)
    if problem:
        raise UsageError(problem)
    try:
        check_scale(scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    grid = check_grid(path, {name: grid_values(name, values) for name, values in grid.items()})
    chosen = parse_plot(plot, grid)
    executor = executor or ("dask" if address else "local")
    if executor not in ("local", "dask"):
        raise UsageError(f"unknown executor {executor!r}: choose local or dask")
    if address and executor != "dask":
        raise UsageError("--address names a dask scheduler: use it with --executor dask")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout}")
    out = Path(out or Path("outputs") / "sweeps" / path.stem).resolve()
    if out == path.parent.resolve():
        raise UsageError(f"--out {out} is the notebook's own folder; choose another")

    if out.is_relative_to(NOTEBOOKS.resolve()):
        check_out(out)  # refuses a folder inside notebooks/ with one line
    digest = notebook_digest(path)
    points = grid_points(grid, scale, digest)
    other = other_grid(out, points, path.stem)
    if other and not force:
        raise UsageError(f"--out {out} holds {other}: this grid's table would replace theirs; choose another "
                         "--out, give a grid that includes those points, or --force to replace it")
    done = {} if force else {p.key: m for p in points if (m := finished_point(p, out))}
    todo = [p for p in points if p.key not in done]
    jobs = min(jobs or max(1, (os.cpu_count() or 1) // 2), max(1, len(todo)))
    relpath = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    source = path.read_text(encoding="utf-8")
    tasks = [{"key": p.key, "notebook": str(path), "relpath": relpath, "source": source,
              "digest": digest, "scale": p.scale, "params": p.params} for p in todo]
    by_key = {p.key: p for p in points}
    with interrupt_on_signals():
        pool = (LocalExecutor(jobs, timeout) if executor == "local"
                else DaskExecutor(jobs, address, cluster_kwargs, timeout))
        with pool:  # a scheduler that does not answer stops the sweep here, before any file
            out = check_out(out)
            bar = tqdm(total=len(points), initial=len(done), desc=f"sweep {path.stem}", disable=not progress)
            try:
                with closing(pool.run(tasks)) as outcomes:
                    for outcome in outcomes:
                        point = by_key[outcome["key"]]
                        save_point(point, outcome, out, path.stem)
                        update_results(points, out, path.name, chosen, grid)
                        if outcome["status"] != "ok":
                            error = outcome["error"].splitlines()[0] if outcome["error"] else ""
                            bar.write(f"failed {point.name}: {error}")
                        bar.update()
            except BaseException:  # interrupted, a full disk: the table holds every point saved so far
                bar.close()
                with suppress(OSError):  # the error that stopped the sweep is the one to report
                    update_results(points, out, path.name, chosen, grid)
                raise
            bar.close()
            df = update_results(points, out, path.name, chosen, grid)
    df.attrs.update(out=str(out), ran=len(todo), skipped=len(done))
    return df
