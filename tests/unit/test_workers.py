"""nbsupport.workers: tasks in their own processes, time limits, stopping, signals."""

import os
import signal
import time
from contextlib import closing
from pathlib import Path

import psutil
import pytest

from nbsupport.workers import Interrupted, interrupt_on_signals, run_each


def square(x):
    return x * x


def fails(x):
    raise ValueError(f"bad {x}")


def sleeps(seconds, marks):
    """Start a grandchild (like a kernel) in its own session, record both pids, then sleep."""
    import subprocess
    import sys
    import tempfile

    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"], start_new_session=True)
    Path(marks, f"{os.getpid()}-{child.pid}").write_text(tempfile.gettempdir())
    time.sleep(seconds)


def test_results_errors_and_order(tmp_path):
    got = {o.index: (o.value, o.error) for o in run_each(square, [(i,) for i in range(5)], jobs=2)}
    assert got == {i: (i * i, "") for i in range(5)}
    (o,) = run_each(fails, [(3,)])
    assert o.value is None and o.error == "ValueError: bad 3"


def _pids(marks):
    return [int(x) for p in marks.iterdir() for x in p.name.split("-")]


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_timeout_stops_the_task_and_what_it_started(tmp_path):
    start = time.monotonic()
    (o,) = run_each(sleeps, [(60, str(tmp_path))], timeout=2)
    assert o.error == "timed out after 2 s (--timeout)" and time.monotonic() - start < 10
    assert all(_gone(pid) for pid in _pids(tmp_path))
    task_tmp = Path(next(tmp_path.iterdir()).read_text())
    assert task_tmp.name.startswith("nbsupport-task-") and not task_tmp.exists()


def test_closing_early_drops_queued_and_stops_running(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    tasks = [(0, str(marks))] + [(60, str(marks))] * 3
    with closing(run_each(sleeps, tasks, jobs=2)) as outcomes:
        first = next(outcomes)
        while len(list(marks.iterdir())) < 2:  # the first done, then a second one started
            time.sleep(0.1)
    assert first.error == "" and len(list(marks.iterdir())) == 2  # the last two never started
    assert all(_gone(pid) for pid in _pids(marks))


def test_signals_raise_interrupted_once_and_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info, interrupt_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert info.value.exit_code == 143 and isinstance(info.value, KeyboardInterrupt)
    assert Interrupted(signal.SIGINT).exit_code == 130
    assert signal.getsignal(signal.SIGTERM) == before
