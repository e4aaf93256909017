"""nbsupport.sweep: grids, resume, failure isolation, interruption, local vs Dask executors.

The fixture notebooks (tests/fixtures/sweep_*.ipynb) import nothing heavy, so one point
executes in about a second; the whole file runs about a dozen kernels.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import nbsupport
from nbsupport import read_records
from nbsupport.runner import UsageError, main
from nbsupport.sweep import sweep

SW = importlib.import_module("nbsupport.sweep")
DRIVER = importlib.import_module("nbsupport.sweep.driver")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = FIXTURES / "sweep_tiny.ipynb"
FAILS = FIXTURES / "sweep_fails.ipynb"
GRID = {"X": [1.0, 2.0], "SEED": [0, 1]}


def _leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def _no_children(timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while multiprocessing.active_children() and time.monotonic() < end:
        time.sleep(0.1)
    return not multiprocessing.active_children()


def test_nbsupport_sweep_is_the_function():
    # the package's submodules are imported by now, yet the name stays the function
    from nbsupport import sweep as fn

    assert fn is sweep is nbsupport.sweep and callable(fn) and not hasattr(fn, "__path__")
    assert SW.sweep is sweep and SW.parse_grid(["X=1"]) == {"X": [1]}


# --- grids: no kernel runs -------------------------------------------------------------------


def test_parse_grid_values():
    grid = SW.parse_grid(["LR=3e-4,1e-3,3e-3", "SEED=0,1", "OPT=adam,sgd", "NAME='a,b'", "ONE=5"])
    assert grid == {"LR": [3e-4, 1e-3, 3e-3], "SEED": [0, 1], "OPT": ["adam", "sgd"],
                    "NAME": ["a,b"], "ONE": [5]}
    for bad in (["LR="], ["LR=1,,2"], ["LR=1", "LR=2"], ["1LR=1"], ["LR"]):
        with pytest.raises(UsageError):
            SW.parse_grid(bad)


def test_grid_points_and_keys():
    points = SW.grid_points({"X": [1.0, 2.0], "SEED": [0, 1], "SCALE": ["smoke"]}, "standard", "d")
    assert [(p.params, p.scale) for p in points] == [
        ({"X": 1.0, "SEED": 0}, "smoke"), ({"X": 1.0, "SEED": 1}, "smoke"),
        ({"X": 2.0, "SEED": 0}, "smoke"), ({"X": 2.0, "SEED": 1}, "smoke")]
    assert len({p.key for p in points}) == 4 and len({p.name for p in points}) == 4
    again = SW.grid_points({"X": [1.0, 2.0], "SEED": [0, 1], "SCALE": ["smoke"]}, "standard", "d")
    assert [p.key for p in again] == [p.key for p in points]
    other = SW.grid_points({"X": [1.0]}, "standard", "another notebook")
    assert other[0].key not in {p.key for p in points}


def test_digest_follows_sources_not_outputs(tmp_path):
    nb = nbformat.read(TINY, as_version=4)
    base = SW.notebook_digest(TINY)
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[-1].execution_count = 3
    nbformat.write(nb, tmp_path / "a.ipynb")
    assert SW.notebook_digest(tmp_path / "a.ipynb") == base
    nb.cells[-1].source += "\n1"
    nbformat.write(nb, tmp_path / "b.ipynb")
    assert SW.notebook_digest(tmp_path / "b.ipynb") != base


@pytest.mark.parametrize("grid, plot, message", [
    ({"LR": [1.0]}, None, "no parameter 'LR'"),
    ({"X": []}, None, "empty list"),
    ({"X": [1.0, "big"]}, None, "expected float"),
    ({"SEED": [0, 0.5]}, None, "expected int"),
    ({"SCALE": ["huge"]}, None, "unknown scale"),
    ({"X": [1.0, 1.0]}, None, "repeats"),
    ({"X": [1, 1.0]}, None, "repeats"),
    ({"SEED": [0, True]}, None, "expected int"),
    ({"X": [1.0]}, "y:SEED", "not a swept parameter"),
    ({"X": [1.0]}, "y", "RECORD:PARAMETER"),
])
def test_bad_grids_fail_before_running(tmp_path, grid, plot, message):
    with pytest.raises(UsageError, match=message):
        sweep(TINY, grid, scale="smoke", out=tmp_path / "out", plot=plot, progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_bad_grid_is_one_line(tmp_path, capsys):
    rc = main(["sweep", str(TINY), "-p", "X=1.0,oops", "--scale", "smoke", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "X='oops'" in err and len(err.splitlines()) == 1
    assert main(["sweep", str(TINY), "-p", "X=1.0", "--executor", "local", "--address", "tcp://h:1",
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["sweep", str(tmp_path / "missing.ipynb"), "-p", "X=1.0"]) == 2
    assert not (tmp_path / "o").exists()


# --- sweeps that run kernels -----------------------------------------------------------------


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """A local 2x2 sweep: interrupted after its first point, then resumed, then rerun."""
    out = tmp_path_factory.mktemp("local")
    save, calls = DRIVER.save_point, []

    def save_then_interrupt(*args, **kwargs):
        meta = save(*args, **kwargs)
        calls.append(meta)
        raise KeyboardInterrupt

    DRIVER.save_point = save_then_interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep(TINY, GRID, scale="smoke", jobs=2, out=out, progress=False)
    finally:
        DRIVER.save_point = save
    interrupted = {"points": sorted(out.glob("points/*/point.json")), "csv": pd.read_csv(out / "results.csv"),
                   "leftovers": _leftovers(out), "no_children": _no_children()}
    resumed = sweep(TINY, GRID, scale="smoke", jobs=2, out=out, progress=False)
    again = sweep(TINY, GRID, scale="smoke", jobs=2, out=out, progress=False, plot="y:X")
    return {"out": out, "interrupted": interrupted, "resumed": resumed, "again": again}


def test_interrupt_keeps_finished_points(local_sweep):
    state = local_sweep["interrupted"]
    assert len(state["points"]) == 1 and len(state["csv"]) == 1
    assert state["csv"].status.tolist() == ["ok"]
    assert state["leftovers"] == [] and state["no_children"]


def test_local_sweep_table(local_sweep):
    df, out = local_sweep["again"], local_sweep["out"]
    assert list(df.columns[:6]) == ["X", "SEED", "SCALE", "status", "seconds", "error"]
    assert df[["X", "SEED"]].values.tolist() == [[1.0, 0], [1.0, 1], [2.0, 0], [2.0, 1]]
    assert (df.status == "ok").all() and (df.SCALE == "smoke").all() and (df.scale == "smoke").all()
    assert df.y.tolist() == [x * x + 0.5 * s for x, s in zip(df.X, df.SEED, strict=True)]
    assert df.pair.tolist() == [[x, s] for x, s in zip(df.X, df.SEED, strict=True)]
    for _, row in df.iterrows():  # every point's executed notebook is in the sweep folder
        nb = out / Path(row.point).with_suffix(".ipynb")
        assert read_records(nb)["y"] == row.y
    csv = pd.read_csv(out / "results.csv")
    assert csv.y.tolist() == df.y.tolist() and json.loads(csv.pair[1]) == [1.0, 1]
    assert pd.read_parquet(out / "results.parquet").y.tolist() == df.y.tolist()
    page = (out / "index.html").read_text()
    assert "y against X" in page and "plotly" in page and page.count("<tr>") == 5
    assert _leftovers(out) == []


def test_resume_skips_finished_points(local_sweep):
    resumed, again, out = local_sweep["resumed"], local_sweep["again"], local_sweep["out"]
    assert (resumed.attrs["ran"], resumed.attrs["skipped"]) == (3, 1)
    assert (again.attrs["ran"], again.attrs["skipped"]) == (0, 4)
    pd.testing.assert_frame_equal(resumed, again)  # read back, wall times included
    one = {"X": [2.0], "SEED": [1]}
    forced = sweep(TINY, one, scale="smoke", out=out, force=True, progress=False)
    assert forced.attrs["ran"] == 1 and forced.y.tolist() == [4.5]


def test_dask_local_cluster_gives_the_same_table(local_sweep, tmp_path):
    pytest.importorskip("distributed")
    # worker processes, as the CLI makes them (in-process threaded workers can collide with
    # the notebook client's own event loop)
    df = sweep(TINY, GRID, scale="smoke", jobs=2, executor="dask", out=tmp_path, progress=False)
    assert df.attrs["ran"] == 4
    pd.testing.assert_frame_equal(df.drop(columns="seconds"),
                                  local_sweep["again"].drop(columns="seconds"))
    assert (tmp_path / "index.html").exists()


def test_failing_point_is_recorded_and_others_finish(tmp_path, capsys):
    out = tmp_path / "fails"
    rc = main(["sweep", str(FAILS), "-p", "X=1,2,3", "--scale", "smoke", "--jobs", "2",
               "--out", str(out), "--plot", "y:X"])
    printed = capsys.readouterr().out
    assert rc == 1 and "1 failed" in printed
    df = pd.read_csv(out / "results.csv")
    assert df.status.tolist() == ["ok", "failed", "ok"]
    assert "fails for X = 2" in df.error[1] and df.y[0] == 10 and df.y[2] == 30
    assert pd.isna(df.y[1])
    # the failed point is rerun next time, the finished ones are not
    again = sweep(FAILS, {"X": [1, 2, 3]}, scale="smoke", out=out, progress=False)
    assert (again.attrs["ran"], again.attrs["skipped"]) == (1, 2)
    # a grid that grows keeps its order: rows follow the new grid, finished points reused
    grown = sweep(FAILS, {"X": [0, 1, 3]}, scale="smoke", out=out, progress=False)
    assert grown.X.tolist() == [0, 1, 3] and grown.y.tolist() == [0, 10, 30]
    assert (grown.attrs["ran"], grown.attrs["skipped"]) == (1, 2)


def test_worker_without_the_notebook_runs_the_sent_source(tmp_path):
    # a remote worker may lack the file: the task carries the source and runs a copy
    task = {"key": "k", "notebook": str(tmp_path / "elsewhere" / "sweep_tiny.ipynb"),
            "relpath": "no/such/sweep_tiny.ipynb", "source": TINY.read_text(),
            "digest": SW.notebook_digest(TINY), "scale": "smoke", "params": {"X": 3.0}}
    outcome = importlib.import_module("nbsupport.sweep.executors").run_point(task)
    assert outcome["status"] == "ok" and outcome["records"]["y"] == 9.0
    assert "recorded y" in outcome["ipynb"] and outcome["html"].lstrip().startswith("<!DOCTYPE")
