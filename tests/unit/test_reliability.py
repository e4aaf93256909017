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

import nbformat
import pandas as pd
import psutil
import pytest
import torch
from safetensors.torch import save_file

from nbsupport.atomic import locked
from nbsupport.runner import NOTEBOOKS, ROOT

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


# --- second round (issue 31): a damaged report, another grid in a sweep folder, a full disk or an
# unwritable theme folder, kill -9, --out inside the sources, None defaults, symbolic-link loops,
# a notebook without a parameters cell ---------------------------------------------------------

ENTRY = {"theme": "keep", "title": "", "scale": "smoke", "status": "ok", "seconds": 1.0, "output": "",
         "html": "", "error": "", "claims": [], "checks": [], "records": {}}

#: The runner's main with the disk "full" for every file under OUT from the first write of a file
#: whose path contains TRIGGER on: ENOSPC from write(), as a full file system gives.
FULL_DISK = r"""
import contextlib, errno, sys
from pathlib import Path
import nbsupport.atomic as atomic
from nbsupport.runner import main

out, trigger, argv = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3:]
original, full = atomic.atomic_open, []

@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    with original(path, mode) as f:
        if Path(path).resolve().is_relative_to(out) and (full or trigger in str(path)):
            full.append(path)
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it
        yield f

atomic.atomic_open = atomic_open
sys.exit(main(argv))
"""


def notebook(path: Path, parameters: str, tagged: bool = True) -> str:
    """A notebook whose first code cell is ``parameters`` and whose second records every name."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    names = [line.split("=")[0].strip() for line in parameters.splitlines() if "=" in line]
    record = ("from IPython.display import display\n" + "".join(
        f'display({{"application/vnd.nbsupport.record+json": {{"name": "{n}", "value": {n}}}}}, raw=True)\n'
        for n in names))
    nb.cells = [nbformat.v4.new_markdown_cell("# Fixture"),
                nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"] if tagged else []}),
                nbformat.v4.new_code_cell(record)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return str(path)


def lines_about(result: dict, word: str) -> list[str]:
    return [line for line in result["err"].splitlines() if word in line]


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def driven2(tmp_path_factory):
    """Every case of the second round that needs no signal, in one driver subprocess."""
    tmp = tmp_path_factory.mktemp("driven2")
    stale = tmp / "tmpdir" / f"nbsupport-task-{dead_pid()}-x1y2"  # left by a runner killed with its workers
    (stale / "jupyter-runtime").mkdir(parents=True)
    run = ["run", str(TINY), "--scale", "smoke"]
    # 1. damaged reports
    keep = {**ENTRY, "notebook": "keep/a.ipynb"}
    truncated = json.dumps({"schema": "x", "notebooks": [keep, {**ENTRY, "notebook": "keep/b.ipynb"}]}, indent=1)
    for name, text in (("truncated", truncated[: truncated.index("keep/b.ipynb")]),
                       ("wrong shape", "[1, 2]"),
                       ("missing fields", json.dumps({"notebooks": [{"notebook": "keep/me.ipynb"}]}))):
        (tmp / name).mkdir()
        (tmp / name / "index.json").write_text(text)
    untagged = notebook(tmp / "plain" / "untagged.ipynb", 'SCALE = "standard"\nX = 1.0', tagged=False)
    # 3. a theme folder that is a file
    (tmp / "blocked-out").mkdir()
    (tmp / "blocked-out" / "blocked").write_text("a file where the theme folder goes")
    blocked = []
    for theme in ("blocked", "fine"):
        (tmp / theme).mkdir()
        blocked.append(str(shutil.copy(TINY, tmp / theme / f"{theme}.ipynb")))
    # 5. --out inside the sources
    (tmp / "srcs").mkdir()
    shutil.copy(TINY, tmp / "srcs" / "tiny.ipynb")
    # 6. None defaults
    nones = notebook(tmp / "nones" / "nones.ipynb", 'SCALE = "standard"\nSEEDS = None  # seeds per arm\n'
                     "SIGNALS = None\nLR = None  # None: the grid\nSTEPS = None  # type: int  steps\n")
    # 7. symbolic-link loops
    (tmp / "loop").symlink_to(tmp / "loop")
    cli = {
        "truncated": [*run, "--out", str(tmp / "truncated")],
        "wrong shape": ["run", untagged, "--scale", "smoke", "--out", str(tmp / "wrong shape")],
        "missing fields": [*run, "--out", str(tmp / "missing fields")],
        "grid a": ["sweep", str(TINY), "-p", "X=1.0", "--scale", "smoke", "--out", str(tmp / "grid")],
        "grid b": ["sweep", str(TINY), "-p", "X=2.0", "--scale", "smoke", "--out", str(tmp / "grid")],
        "grid a+b": ["sweep", str(TINY), "-p", "X=1.0,2.0", "--scale", "smoke", "--out", str(tmp / "grid")],
        "blocked theme": ["run", *blocked, "--scale", "smoke", "--out", str(tmp / "blocked-out")],
        "out in notebooks": [*run, "--out", str(NOTEBOOKS / "zz_never_made")],
        "out in sources": ["run", str(tmp / "srcs"), "--scale", "smoke", "--out", str(tmp / "srcs" / "out")],
        "sweep out in notebooks": ["sweep", str(TINY), "-p", "X=1.0", "--scale", "smoke",
                                   "--out", str(NOTEBOOKS / "zz_never_made")],
        "SEEDS=abc": ["run", nones, "-p", "SEEDS=abc", "--out", str(tmp / "never")],
        "SEEDS=-1": ["run", nones, "-p", "SEEDS=-1", "--out", str(tmp / "never")],
        "SEEDS=1e9": ["run", nones, "-p", "SEEDS=1000000000", "--out", str(tmp / "never")],
        "SIGNALS=0": ["run", nones, "-p", "SIGNALS=0", "--out", str(tmp / "never")],
        "LR=abc": ["run", nones, "-p", "LR=abc", "--out", str(tmp / "never")],
        "STEPS=1.5": ["run", nones, "-p", "STEPS=1.5", "--out", str(tmp / "never")],
        "sweep SEEDS=0": ["sweep", nones, "-p", "SEEDS=0,1", "--out", str(tmp / "never")],
        # a real notebook (ssm/02: SEEDS = None); the time limit bounds it should the check fail
        "ssm SEEDS=abc": ["run", str(NOTEBOOKS / "ssm" / "02_s4d_initialization.ipynb"), "-p", "SEEDS=abc",
                          "--scale", "smoke", "--timeout", "5", "--out", str(tmp / "never")],
        "typed ok": ["run", nones, "-p", "SEEDS=2", "-p", "LR=1", "-p", "STEPS=3", "-p", "SIGNALS=None",
                     "--scale", "smoke", "--out", str(tmp / "typed")],
    }
    merge_cfg = tmp / "merge.yaml"
    merge_cfg.write_text(json.dumps({"merge_method": "task_arithmetic", "base_model": str(tmp / "loop"),
                                     "models": [{"model": str(tmp / "loop"), "parameters": {"weight": 1.0}}]}))
    merges = {"merge loop in": [str(merge_cfg), str(tmp / "merged")],
              "merge loop out": [str(merge_cfg), str(tmp / "loop" / "x")]}
    calls = [("nbsupport.runner", argv) for argv in cli.values()]
    calls += [("nbsupport.merging.__main__", argv + ["--quiet"]) for argv in merges.values()]
    results = dict(zip([*cli, *merges], drive(tmp, *calls), strict=True))
    return {**results, "tmp": tmp, "stale": stale}


def test_damaged_report_is_kept_aside_and_readable_entries_carried_over(driven2):
    tmp = driven2["tmp"]
    for name, names in (("truncated", ["keep/a.ipynb", "tests/fixtures/sweep_tiny.ipynb"]),
                        ("wrong shape", [str(tmp / "plain" / "untagged.ipynb")])):
        result = driven2[name]
        assert result["rc"] == 0 and "Traceback" not in result["err"], result
        assert len(lines_about(result, "damaged")) == 1 and "index.json.corrupt-" in result["err"], result
        kept = list((tmp / name).glob("index.json.corrupt-*"))
        assert len(kept) == 1, "the damaged file is kept aside"
        assert sorted(e["notebook"] for e in report_entries(tmp / name)) == names
    assert (tmp / "wrong shape" / next((tmp / "wrong shape").glob("*.corrupt-*")).name).read_text() == "[1, 2]"
    result = driven2["missing fields"]  # readable, only short of fields: no warning, nothing renamed
    assert result["rc"] == 0 and not lines_about(result, "damaged") and "Traceback" not in result["err"], result
    entries = {e["notebook"]: e for e in report_entries(tmp / "missing fields")}
    assert entries["keep/me.ipynb"]["theme"] == "keep" and "keep/me.ipynb" in \
        (tmp / "missing fields" / "index.html").read_text()
    assert not list((tmp / "missing fields").glob("*.corrupt-*"))


def test_sweep_refuses_a_folder_holding_another_grid(driven2):
    assert driven2["grid a"]["rc"] == 0, driven2["grid a"]
    one_line(driven2["grid b"], 2, "holds 1 points of another grid (X=1.0")
    assert driven2["grid a+b"]["rc"] == 0, "a grid that includes the folder's points resumes it"
    assert "(1 finished earlier, skipped)" in driven2["grid a+b"]["out"]


def test_unwritable_theme_folder_fails_that_notebook_only(driven2):
    result, out = driven2["blocked theme"], driven2["tmp"] / "blocked-out"
    assert result["rc"] == 1 and "Traceback" not in result["err"], result
    line = next(line for line in result["out"].splitlines() if "blocked.ipynb" in line)
    assert line.startswith("failed") and f"cannot write {out / 'blocked' / 'blocked.ipynb'}" in line
    assert "errno 17 EEXIST" in line
    statuses = {Path(e["notebook"]).name: e["status"] for e in report_entries(out)}
    assert statuses == {"blocked.ipynb": "failed", "fine.ipynb": "ok"}


def full_disk(tmp_path: Path, out: Path, trigger: str, *argv: str) -> tuple[int, list[str]]:
    """Run the command with the disk full from the first write under ``out`` whose path holds
    ``trigger``: its exit code and its stderr lines that report an error."""
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(out), trigger, *argv, "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=_env(tmp_path), timeout=300)
    return proc.returncode, [line for line in proc.stderr.splitlines() if line.startswith(("error", "Traceback"))]


def test_full_disk_stops_with_one_line_and_keeps_the_report(tmp_path):
    out = tmp_path / "out"
    nbs = [str(shutil.copy(TINY, (tmp_path / f"{n}.ipynb"))) for n in ("a_first", "b_second", "c_third")]
    rc, errors = full_disk(tmp_path, out, "b_second", "run", *nbs, "--scale", "smoke")
    assert rc == 1 and len(errors) == 1, errors
    assert f"cannot write {out.resolve() / tmp_path.name / 'b_second.ipynb'}" in errors[0]
    assert "No space left on device (errno 28 ENOSPC)" in errors[0]
    assert [(Path(e["notebook"]).name, e["status"]) for e in report_entries(out)] == [("a_first.ipynb", "ok")]
    assert not (out / tmp_path.name / "c_third.ipynb").exists(), "the run stopped"
    # a sweep: the first point is kept, the second cannot be written
    rc, errors = full_disk(tmp_path, tmp_path / "sweep", "X=2.0", "sweep", str(TINY), "-p", "X=1.0,2.0",
                           "--jobs", "1", "--scale", "smoke")
    assert rc == 1 and len(errors) == 1 and "No space left on device (errno 28 ENOSPC)" in errors[0], errors
    assert "X=2.0" in errors[0] and "finished points are kept" in errors[0]
    assert pd.read_csv(tmp_path / "sweep" / "results.csv").X.tolist() == [1.0]
    assert not list(tmp_path.rglob("*.tmp")) and not list((tmp_path / "tmpdir").iterdir())


def test_kill_9_of_the_runner_stops_workers_and_kernels(tmp_path, start_cli):
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = start_cli(tmp_path, marks, "run", str(SLEEPY), "--scale", "smoke", "--out", str(tmp_path / "out"))
    wait_for(lambda: len(kernels(marks)) == 1, "a sleeping kernel", proc)
    workers = psutil.Process(proc.pid).children()
    kernel = psutil.Process(kernels(marks)[0])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()  # not communicate(): a worker left running would hold the pipes open
    try:
        wait_for(lambda: all(stopped(p.pid) for p in workers) and stopped(kernel.pid),
                 "the worker and the kernel to end", timeout=15)
        wait_for(lambda: not list((tmp_path / "tmpdir").iterdir()), "the temporary folder to go", timeout=5)
    finally:
        for p in [*workers, kernel]:
            with contextlib.suppress(psutil.Error):
                p.kill()


def test_next_run_removes_the_folders_of_a_runner_killed_with_its_workers(driven2):
    assert not driven2["stale"].exists()


def test_out_inside_the_sources_is_refused(driven2):
    for name in ("out in notebooks", "out in sources", "sweep out in notebooks"):
        one_line(driven2[name], 2, "lies inside the notebook folder")
    assert not (NOTEBOOKS / "zz_never_made").exists() and not (driven2["tmp"] / "srcs" / "out").exists()


def test_parameters_with_none_defaults_are_typed_and_counts_ranged(driven2):
    one_line(driven2["SEEDS=abc"], 2, "SEEDS='abc' for nones.ipynb: expected int from 1 to 1000")
    one_line(driven2["SEEDS=-1"], 2, "SEEDS=-1 for nones.ipynb: expected int from 1 to 1000")
    one_line(driven2["SEEDS=1e9"], 2, "SEEDS=1000000000 for nones.ipynb: expected int from 1 to 1000")
    one_line(driven2["SIGNALS=0"], 2, "SIGNALS=0 for nones.ipynb: expected int from 1 to 100000")
    one_line(driven2["LR=abc"], 2, "LR='abc' for nones.ipynb: expected float > 0 and <= 10")
    one_line(driven2["STEPS=1.5"], 2, "STEPS=1.5 for nones.ipynb: expected int")  # from `# type: int`
    one_line(driven2["sweep SEEDS=0"], 2, "SEEDS=0 for nones.ipynb: expected int from 1 to 1000")
    one_line(driven2["ssm SEEDS=abc"], 2, "SEEDS='abc' for 02_s4d_initialization.ipynb: expected int")
    assert not (driven2["tmp"] / "never").exists()
    assert driven2["typed ok"]["rc"] == 0, driven2["typed ok"]
    records = report_entries(driven2["tmp"] / "typed")[0]["records"]
    assert records == {"SCALE": "smoke", "SEEDS": 2, "SIGNALS": None, "LR": 1.0, "STEPS": 3}


def test_symlink_loop_given_to_merging_is_one_line(driven2):
    one_line(driven2["merge loop in"], 2, "Symlink loop from")
    one_line(driven2["merge loop out"], 2, "Symlink loop from")


def test_notebook_without_parameters_cell_is_warned_in_line_and_report(driven2):
    result, out = driven2["wrong shape"], driven2["tmp"] / "wrong shape"
    line = next(line for line in result["out"].splitlines() if "untagged.ipynb" in line)
    assert line.startswith("ok") and "warning: no cell tagged 'parameters'" in line
    entry = next(e for e in report_entries(out) if e["notebook"].endswith("untagged.ipynb"))
    assert entry["warning"].startswith("no cell tagged 'parameters'")
    assert "warning: no cell tagged" in (out / "index.html").read_text()
    assert not report_entries(driven2["tmp"] / "typed")[0]["warning"], "a tagged notebook has no warning"
