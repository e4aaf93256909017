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
is written atomically by the process that called ``sweep``, ``point.json`` last, and the table
is rewritten as soon as a point finishes; so an interrupted sweep (Ctrl-C, SIGTERM) keeps
every finished point and leaves no half-written file, and a rerun skips each point whose
``point.json`` says ok for the same key: a hash of the notebook's cells, the scale and the
parameters (``force=True`` reruns). A failing point is recorded with its error and the others
go on; ``timeout`` stops a point that hangs.

Modules: :mod:`~nbsupport.sweep.grid` (parsing and checking the grid, its points),
:mod:`~nbsupport.sweep.executors` (local processes, Dask), :mod:`~nbsupport.sweep.outputs`
(files), :mod:`~nbsupport.sweep.report` (index.html), :mod:`~nbsupport.sweep.driver`
(:func:`sweep`) and :mod:`~nbsupport.sweep.cli`.
"""

from nbsupport.sweep.driver import sweep
from nbsupport.sweep.grid import Point, check_grid, grid_points, notebook_digest, parse_grid

__all__ = ["Point", "check_grid", "grid_points", "notebook_digest", "parse_grid", "sweep"]
