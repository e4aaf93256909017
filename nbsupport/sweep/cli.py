"""``python -m nbsupport sweep NOTEBOOK -p NAME=V1,V2 ...``: the sweep's command line."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from nbsupport.scales import SCALES
from nbsupport.sweep.driver import sweep
from nbsupport.sweep.grid import parse_grid


def main_sweep(args) -> int:
    grid = parse_grid(args.param or [])
    df = sweep(args.notebook, grid, scale=args.scale, jobs=args.jobs, executor=args.executor,
               address=args.address, out=args.out, force=args.force, plot=args.plot,
               timeout=args.timeout, progress=sys.stderr.isatty())
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
    p.add_argument("--force", action="store_true", help="rerun points that already finished, and replace the table of a folder "
                   "that holds another grid")
    p.add_argument("--plot", metavar="RECORD:PARAM", help="figure of a record against a parameter")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop a point that runs longer and mark it failed (dask: per cell; default: no limit)")
    p.set_defaults(func=main_sweep,
                   interrupted="finished points are kept; run the same command again to resume")
