"""Worker processes that can be stopped: each task in its own process, at most ``jobs`` at once.

``run_each(fn, args, jobs, timeout=...)`` yields one :class:`Outcome` per task as tasks
finish. A task that runs past ``timeout`` seconds is stopped and yields an error. Closing the
generator (the consumer raised, Ctrl-C, SIGTERM) drops the queued tasks and stops the running
ones with everything they started (notebook kernels run in their own session, so they are
found through the process tree and stopped too), then removes every task's temporary folder.

Each task's process gets a fresh temporary folder (``TMPDIR``, ``tempfile.tempdir`` and
Jupyter's runtime folder point into it), so a stopped task leaves no temporary files.

A task's process watches its parent: when the parent is gone (``kill -9``, an out-of-memory
kill), it stops everything it started (the kernel and its workers), removes its temporary
folder and exits within a second, instead of running on without a time limit. Folders of
tasks whose parent died before they could remove them (the whole process group killed) are
removed by the next ``run_each``: their names carry the parent's pid.
``interrupt_on_signals()`` turns SIGINT and SIGTERM into :class:`Interrupted` in the main thread.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import psutil

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Temporary folder of a task: ``nbsupport-task-<pid of the parent>-<random>``.
TASK_DIR = "nbsupport-task-"
#: Seconds between a task's checks that its parent is alive.
WATCH_S = 0.2


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``exit_code`` is the shell's 128 + signal number (130, 143)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Inside the block, the first SIGINT or SIGTERM raises :class:`Interrupted`; later ones are
    ignored while the cleanup runs. Only the main thread can handle signals: elsewhere this does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in SIGNALS}

    def handler(signum: int, frame: Any) -> None:
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)


@dataclass
class Outcome:
    """One task's end: ``value`` (what ``fn`` returned) or ``error`` (why there is none)."""

    index: int
    value: Any
    error: str
    seconds: float


@dataclass
class _Job:
    index: int
    process: Any
    conn: Connection
    tmp: str
    start: float


def _watch_parent(parent: int, tmp: str) -> None:
    """In a task's process: once ``parent`` is gone, kill what the task started, remove its
    temporary folder and exit (the result has nowhere to go)."""
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    try:
        tree = psutil.Process().children(recursive=True)
    except psutil.Error:
        tree = []
    for p in tree:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(tree, timeout=2)
    shutil.rmtree(tmp, ignore_errors=True)
    os._exit(1)


def reap_stale(folder: str | None = None) -> list[str]:
    """Remove the temporary folders of tasks whose parent process no longer exists (left by a
    runner killed with everything it started); returns the folders removed."""
    folder = folder or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = re.fullmatch(re.escape(TASK_DIR) + r"(\d+)-.+", name)
        if m and not psutil.pid_exists(int(m.group(1))):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            removed.append(os.path.join(folder, name))
    return removed


def _child(conn: Connection, fn: Callable[..., Any], args: tuple, tmp: str, threads: int | None,
           parent: int, inherited: Connection | None) -> None:
    if inherited is not None:  # the parent's end of the result pipe, copied by fork: a worker that
        inherited.close()      # held it would wait forever to send a result nobody reads
    threading.Thread(target=_watch_parent, args=(parent, tmp), daemon=True, name="watch-parent").start()
    # the parent handles Ctrl-C and SIGTERM and stops this process; it only has to work
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    tempfile.tempdir = tmp
    os.environ.update(TMPDIR=tmp, JUPYTER_RUNTIME_DIR=os.path.join(tmp, "jupyter-runtime"))
    if threads:  # parallel tasks split the cores: oversubscribed OpenMP threads slow torch many times over
        # each task may keep `threads` cores busy with seed workers (nbsupport.train), each worker
        # and the kernel itself on one intra-op thread, unless the user chose otherwise
        os.environ.setdefault("NBSUPPORT_WORKERS", str(threads))
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        conn.send((fn(*args), ""))
    except Exception as exc:  # noqa: BLE001 - the task failed; the parent reports it
        conn.send((None, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _start(ctx: Any, fn: Callable[..., Any], index: int, args: tuple, threads: int | None) -> _Job:
    tmp = tempfile.mkdtemp(prefix=f"{TASK_DIR}{os.getpid()}-")
    recv, send = ctx.Pipe(duplex=False)
    inherited = recv if ctx.get_start_method() == "fork" else None
    process = ctx.Process(target=_child, args=(send, fn, args, tmp, threads, os.getpid(), inherited), daemon=False)
    # block the signals across the fork so the child never runs the parent's handler
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    send.close()
    return _Job(index, process, recv, tmp, time.monotonic())


def _reap(job: _Job) -> None:
    job.process.join(5)
    if job.process.is_alive():
        _stop([job])
        return
    job.conn.close()
    shutil.rmtree(job.tmp, ignore_errors=True)


def _stop(jobs: Sequence[_Job], grace: float = 2.0) -> None:
    """Kill the workers and stop everything they started (SIGTERM, then SIGKILL after ``grace``)."""
    tree: list[psutil.Process] = []
    for job in jobs:
        try:
            tree += psutil.Process(job.process.pid).children(recursive=True)
        except psutil.Error:
            pass
        job.process.kill()  # the worker writes no file: the parent saves every result
    for p in tree:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    for job in jobs:
        job.process.join()
        job.conn.close()
        shutil.rmtree(job.tmp, ignore_errors=True)


def run_each(fn: Callable[..., Any], args: Sequence[tuple], jobs: int = 1, *, timeout: float | None = None,
             threads: int | None = None) -> Iterator[Outcome]:
    """``fn(*a)`` for each ``a`` in ``args``, each in its own process, ``jobs`` at a time, yielded
    as they finish (``Outcome.index`` is the position in ``args``). ``threads``, the cores
    each task may use, sets ``NBSUPPORT_WORKERS`` (and ``OMP_NUM_THREADS=1``) in each process
    unless already set. Use as
    ``with contextlib.closing(run_each(...)) as outcomes:`` so that leaving the loop early
    stops what still runs."""
    ctx = multiprocessing.get_context()
    reap_stale()
    queue = deque(enumerate(args))
    running: dict[Connection, _Job] = {}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                index, a = queue.popleft()
                job = _start(ctx, fn, index, tuple(a), threads)
                running[job.conn] = job
            wait_s = None
            if timeout is not None:
                wait_s = max(0.0, min(j.start + timeout for j in running.values()) - time.monotonic())
            for conn in wait(list(running), timeout=wait_s):
                job = running.pop(conn)
                seconds = round(time.monotonic() - job.start, 2)
                try:
                    value, error = conn.recv()
                except (EOFError, OSError):
                    job.process.join(5)
                    value, error = None, f"the worker process died (exit code {job.process.exitcode})"
                _reap(job)
                yield Outcome(job.index, value, error, seconds)
            if timeout is not None:
                late = [j for j in running.values() if time.monotonic() - j.start >= timeout]
                if late:
                    for job in late:
                        del running[job.conn]
                    _stop(late)
                    for job in late:
                        yield Outcome(job.index, None, f"timed out after {timeout:g} s (--timeout)",
                                      round(time.monotonic() - job.start, 2))
    finally:
        _stop(list(running.values()))
