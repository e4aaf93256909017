"""Robustness of the command lines, driven as a user would: in subprocesses, with signals,
time limits, unusable folders, corrupt files and bad numbers.

Kernels run two tiny fixtures: ``sweep_tiny`` (finishes in about a second) and ``sleepy``
(sleeps ``SLEEP`` seconds; with ``NBSUPPORT_TEST_MARKS`` set it first writes its kernel's pid
there, so a test can check that the kernel was stopped). Checks that need no kernel run in
one driver subprocess that calls the command lines' ``main`` in turn.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
from safetensors.torch import save_file

from nbsupport.atomic import locked
from nbsupport.runner import ROOT

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = FIXTURES / "sweep_tiny.ipynb"
SLEEPY = FIXTURES / "sleepy.ipynb"
WAIT_S = 90  # generous: kernels start slowly on a busy machine
EXIT_S = 10  # an interrupted command is gone this soon after the signal

DRIVER = r"""
import contextlib, importlib, io, json, sys, time, traceback
results = []
for module, argv in json.loads(sys.argv[1]):
    err, out = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = importlib.import_module(module).main(argv)
        except SystemExit as exc:
            rc = exc.code
        except BaseException:
            rc = "traceback"
            traceback.print_exc()
    results.append({"rc": rc, "err": err.getvalue(), "out": out.getvalue(),
                    "seconds": time.monotonic() - start})
print(json.dumps(results))
"""


def _env(tmp_path: Path, marks: Path | None = None) -> dict[str, str]:
    tmp = tmp_path / "tmpdir"  # the commands' temporary folders, to check they are removed
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NBSUPPORT_HEADLESS": "1", "TMPDIR": str(tmp)}
    if marks is not None:
        env["NBSUPPORT_TEST_MARKS"] = str(marks)
    return env


def drive(tmp_path: Path, *calls: tuple[str, list[str]], marks: Path | None = None) -> list[dict]:
    """Call ``module.main(argv)`` for each call in one subprocess: rc, stderr, stdout, seconds."""
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(calls)], capture_output=True, text=True,
                          cwd=ROOT, env=_env(tmp_path, marks), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def one_line(result: dict, rc: int, message: str) -> None:
    lines = [line for line in result["err"].splitlines() if line.strip()]
    assert result["rc"] == rc and len(lines) == 1 and message in lines[0], result


@pytest.fixture
def start_cli():
    """Start ``python -m nbsupport ARGS`` in its own process group; whatever still runs at the
    end of the test (a failed one) is killed with everything it started."""
    started = []

    def start(tmp_path: Path, marks: Path, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "nbsupport", *args], cwd=ROOT, env=_env(tmp_path, marks),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            tree = psutil.Process(proc.pid).children(recursive=True)
            os.killpg(proc.pid, signal.SIGKILL)
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            proc.communicate()


def wait_for(condition, what: str, proc: subprocess.Popen | None = None, timeout: float = WAIT_S) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the command ended before {what}: {proc.communicate()}")
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def kernels(marks: Path) -> list[int]:
    return [int(p.name) for p in marks.iterdir()]


def stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def copies(tmp_path: Path, source: Path, *names: str) -> list[str]:
    folder = tmp_path / "nbs"
    folder.mkdir(exist_ok=True)
    return [str(shutil.copy(source, folder / f"{name}.ipynb")) for name in names]


def interrupt(proc: subprocess.Popen, sig: int, group: bool) -> tuple[int, str, float]:
    """Send ``sig`` (to the whole process group, as a terminal's Ctrl-C does, or to the command
    alone, as ``timeout`` and ``docker stop`` do); rc, stderr and seconds until it ended."""
    start = time.monotonic()
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=EXIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"still running {EXIT_S} s after {signal.Signals(sig).name}") from None
    return proc.returncode, err, time.monotonic() - start


def report_entries(out: Path) -> list[dict]:
    return json.loads((out / "index.json").read_text())["notebooks"]


def unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot write: a read-only folder, or (root ignores permission
    bits) /sys, which even root cannot write."""
    if os.geteuid() == 0:
        return Path("/sys")
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


# --- cases 1, 2, 4, 5: interrupts cancel queued work, stop kernels, keep what finished -----------


def test_ctrl_c_on_run_jobs_stops_at_once_and_keeps_the_report(tmp_path, start_cli):
    marks, out = tmp_path / "marks", tmp_path / "out"
    marks.mkdir()
    fast = copies(tmp_path, TINY, "a_fast")
    slow = copies(tmp_path, SLEEPY, "b_slow", "c_slow", "d_queued")
    broken = tmp_path / "nbs" / "a_broken.ipynb"
    broken.write_text('{"cells": [')
    proc = start_cli(tmp_path, marks, "run", str(broken), *fast, *slow, "--jobs", "2", "--scale", "smoke", "--out", str(out))
    wait_for(lambda: len(kernels(marks)) == 2, "two sleeping kernels", proc)
    rc, err, seconds = interrupt(proc, signal.SIGINT, group=True)
    assert rc == 130 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted by SIGINT")
    assert seconds < EXIT_S
    assert all(stopped(pid) for pid in kernels(marks)) and len(kernels(marks)) == 2  # d_queued never ran
    entries = report_entries(out)
    assert [(Path(e["notebook"]).name, e["status"]) for e in entries] == [("a_broken.ipynb", "failed"),
                                                                           ("a_fast.ipynb", "ok")]
    assert (out / "index.html").exists() and not list(out.rglob("*.tmp"))
    assert not list((tmp_path / "tmpdir").iterdir()), "temporary folders are removed"


def test_sigterm_on_sweep_stops_workers_and_kernels(tmp_path, start_cli):
    marks, out = tmp_path / "marks", tmp_path / "out"
    marks.mkdir()
    proc = start_cli(tmp_path, marks, "sweep", str(SLEEPY), "-p", "SLEEP=0,600,601", "--jobs", "2",
                     "--scale", "smoke", "--out", str(out))

    def first_point_saved():
        return (out / "results.csv").exists() and len(pd.read_csv(out / "results.csv")) == 1

    wait_for(lambda: first_point_saved() and len(kernels(marks)) == 3, "a finished point and two sleeping", proc)
    rc, err, seconds = interrupt(proc, signal.SIGTERM, group=False)
    assert rc == 143 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted by SIGTERM")
    assert all(stopped(pid) for pid in kernels(marks))
    before = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
    time.sleep(1)  # nothing goes on writing after the command ended
    assert sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*")) == before
    table = pd.read_csv(out / "results.csv")
    assert table.SLEEP.tolist() == [0.0] and table.status.tolist() == ["ok"]
    assert not list((tmp_path / "tmpdir").iterdir()) and not list(out.rglob("*.tmp"))


# --- case 5: concurrent runners lose no entry ---------------------------------------------


def test_report_update_waits_for_the_lock_and_merges(tmp_path, start_cli):
    out = tmp_path / "out"
    out.mkdir()
    fast = copies(tmp_path, TINY, "mine")[0]
    with locked(out / "index.json"):  # another runner is updating the report
        proc = start_cli(tmp_path, tmp_path, "run", fast, "--scale", "smoke", "--out", str(out))
        wait_for(lambda: (out / "nbs" / "mine.html").exists(), "the executed notebook", proc)
        time.sleep(1)
        assert not (out / "index.json").exists(), "the report is written under the lock"
        other = {"notebook": "other.ipynb", "theme": "x", "title": "", "scale": "smoke", "status": "ok",
                 "seconds": 1.0, "output": "", "html": "", "error": "", "claims": [], "records": {}}
        (out / "index.json").write_text(json.dumps({"notebooks": [other]}))
    assert proc.wait(timeout=WAIT_S) == 0
    names = sorted(Path(e["notebook"]).name for e in report_entries(out))
    assert names == ["mine.ipynb", "other.ipynb"]


# --- cases 3-8 without signals: one driver subprocess runs every command line in turn --------


@pytest.fixture(scope="module")
def driven(tmp_path_factory):
    """Every check below, run once: name -> {"rc", "err", "out", "seconds"} plus the folders."""
    tmp = tmp_path_factory.mktemp("driven")
    marks = tmp / "marks"
    marks.mkdir()
    a_file = tmp / "a_file"
    a_file.write_text("x")
    bad = tmp / "broken.ipynb"
    bad.write_text("not a notebook")
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    never, timed = tmp / "never", tmp / "timed"
    run, sweep = ["run", str(TINY), "--scale", "smoke"], ["sweep", str(TINY), "--scale", "smoke"]
    hang = ["--scale", "smoke", "--jobs", "2", "--timeout", "5"]
    cli = {
        "out is a file": [*run, "--out", str(a_file)],
        "out under a file": [*run, "--out", str(a_file / "sub")],
        "out unwritable": [*run, "--out", str(unwritable(tmp))],
        "sweep out is a file": [*sweep, "-p", "X=1.0", "--out", str(a_file)],
        "sweep out unwritable": [*sweep, "-p", "X=1.0", "--out", str(unwritable(tmp))],
        "bool for int": [*run, "-p", "SEED=True", "--out", str(never)],
        "1 and 1.0": [*sweep, "-p", "X=1,1.0", "--out", str(never)],
        "malformed address": [*sweep, "-p", "X=1.0", "--address", "not-an-address", "--out", str(never)],
        "refused address": [*sweep, "-p", "X=1.0", "--address", f"tcp://127.0.0.1:{free}", "--out", str(never)],
        "sweep unreadable": ["sweep", str(bad), "-p", "X=1.0", "--out", str(never)],
        "list unreadable": ["list", str(bad), str(TINY)],
        "run timeout": ["run", str(bad), *copies(tmp, SLEEPY, "hangs"), *hang, "--out", str(timed / "run")],
        "sweep timeout": ["sweep", str(SLEEPY), "-p", "SLEEP=500,600", *hang, "--out", str(timed / "sweep")],
    }
    calls = [("nbsupport.runner", argv) for argv in cli.values()]
    merges = merge_calls(tmp)
    calls += [("nbsupport.merging.__main__", argv + ["--quiet"]) for argv in merges.values()]
    results = dict(zip([*cli, *merges], drive(tmp, *calls, marks=marks), strict=True))
    return {**results, "tmp": tmp, "free": free, "marks": marks}


def test_unusable_out_fails_before_anything_runs(driven):
    for name in ("out is a file", "out under a file", "sweep out is a file"):
        one_line(driven[name], 2, "is a file")
    for name in ("out unwritable", "sweep out unwritable"):
        one_line(driven[name], 2, "cannot write to --out")
    assert (driven["tmp"] / "a_file").read_text() == "x"


def test_unreadable_notebook_is_one_entry_or_line(driven):
    run = {Path(e["notebook"]).name: e for e in report_entries(driven["tmp"] / "timed/run")}
    assert run["broken.ipynb"]["status"] == "failed" and "cannot read broken.ipynb" in run["broken.ipynb"]["error"]
    assert "hangs.ipynb" in run  # the others ran
    one_line(driven["sweep unreadable"], 2, "cannot read broken.ipynb as a notebook")
    listed = driven["list unreadable"]
    assert listed["rc"] == 1 and "Traceback" not in listed["err"]
    assert "broken.ipynb" in listed["out"] and "UNREADABLE" in listed["out"] and "Tiny sweep fixture" in listed["out"]


def test_timeout_marks_a_hung_notebook_or_point_failed(driven):
    assert driven["run timeout"]["rc"] == 1 and driven["sweep timeout"]["rc"] == 1
    run = {Path(e["notebook"]).name: e for e in report_entries(driven["tmp"] / "timed/run")}
    assert run["hangs.ipynb"]["status"] == "failed" and run["hangs.ipynb"]["error"] == "timed out after 5 s (--timeout)"
    table = pd.read_csv(driven["tmp"] / "timed/sweep/results.csv")
    assert table.status.tolist() == ["failed", "failed"] and table.error.str.contains("timed out after 5 s").all()
    assert all(stopped(pid) for pid in kernels(driven["marks"]))
    assert not list((driven["tmp"] / "tmpdir").iterdir()), "temporary folders are removed"


def test_parameter_values_and_dask_addresses(driven):
    one_line(driven["bool for int"], 2, "SEED=True for sweep_tiny.ipynb: expected int")
    one_line(driven["1 and 1.0"], 2, "repeats a value")
    one_line(driven["malformed address"], 2, "is not a scheduler address")
    assert driven["malformed address"]["seconds"] < 3
    one_line(driven["refused address"], 2, f"no dask scheduler answered at tcp://127.0.0.1:{driven['free']}")
    assert driven["refused address"]["seconds"] < 30  # the first import of distributed included
    assert not (driven["tmp"] / "never").exists()


def merge_calls(tmp: Path) -> dict[str, list[str]]:
    """Checkpoints (good, NaN, a git-lfs pointer, empty), configs and a stale partial folder."""
    g = torch.Generator().manual_seed(0)
    state = {"layers.0.w": torch.randn(4, 4, generator=g), "head.w": torch.randn(2, 4, generator=g)}
    for name, shift in (("base", 0.0), ("a", 0.1), ("nan", float("nan"))):
        (tmp / name).mkdir()
        save_file({k: v + shift for k, v in state.items()}, str(tmp / name / "model.safetensors"))
    (tmp / "lfs").mkdir()
    (tmp / "lfs" / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 4000000000\n")
    (tmp / "empty").mkdir()
    (tmp / "empty" / "model.safetensors").write_bytes(b"")
    (tmp / "broken.yaml").write_text("merge_method: ties\nmodels: [a, b\n")
    (tmp / ".merged.partial-999999999-x").mkdir()  # left by a killed merge

    def config(name: str, model: str = "a", method: str = "task_arithmetic", params=None, weight=1.0) -> str:
        path = tmp / f"{name}.yaml"
        path.write_text(json.dumps({"merge_method": method, "base_model": str(tmp / "base"),
                                    "parameters": params or {},
                                    "models": [{"model": str(tmp / model), "parameters": {"weight": weight}}]}))
        return str(path)

    out = str(tmp / "merged")
    return {
        "lfs": [config("lfs", "lfs"), out],
        "empty": [config("empty", "empty"), out],
        "yaml": [str(tmp / "broken.yaml"), out],
        "weight abc": [config("abc", weight="abc"), out],
        "shard abc": [config("ok"), out, "--max-shard-size", "abc"],
        "nan weight": [config("nanw", weight=float("nan")), out],
        "nan tensor": [config("nant", "nan"), out],
        "slerp t": [config("slerp", method="slerp", params={"t": 5}), out],
        "overwrite input": [config("ok"), str(tmp / "a"), "--overwrite"],
        "merge": [config("ok"), out],
    }


def test_merge_bad_files_and_configs_are_one_line(driven):
    one_line(driven["lfs"], 2, "git-lfs pointer")
    one_line(driven["empty"], 2, "0 bytes")
    one_line(driven["yaml"], 2, "not valid YAML at line 3")
    one_line(driven["weight abc"], 2, "weight must be a number, got 'abc'")
    one_line(driven["shard abc"], 2, "max shard size 'abc'")


def test_merge_refuses_bad_numbers_and_protects_inputs(driven):
    tmp = driven["tmp"]
    one_line(driven["nan weight"], 2, "weight must be a finite number")
    one_line(driven["nan tensor"], 2, "NaN or inf")
    one_line(driven["slerp t"], 2, "t must be in [0, 1], got 5")
    one_line(driven["overwrite input"], 2, "overlaps the input")
    assert [p.name for p in (tmp / "a").iterdir()] == ["model.safetensors"]
    assert driven["merge"]["rc"] == 0, driven["merge"]
    assert not [p for p in tmp.iterdir() if ".partial-" in p.name], "stale partial folders are reaped"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp / "merged").stat().st_mode & 0o777 == 0o777 & ~umask
