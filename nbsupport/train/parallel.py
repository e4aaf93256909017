"""Seeds over CPU cores: forked worker processes with one torch thread each, and thread defaults.

Why one thread per process: small models train arithmetic-bound steps of a few milliseconds,
where torch's OpenMP threads spin-wait at every parallel region; beside another busy process
two spinning threads on two cores can run many times slower than one thread. One thread per
process never collapses, and several seeds fill the cores from separate processes instead.

The environment variable ``NBSUPPORT_WORKERS`` (contract):

- A positive int: the number of CPU cores this process may keep busy with training, so the
  most workers :func:`run_tasks`, :func:`run_seeds` and :func:`nbsupport.train.fit` start.
  The notebook runner sets it in each kernel to ``max(1, cores // jobs)`` so that ``--jobs``
  kernels and their seed workers share the cores without oversubscribing; a user may set it
  by hand.
- Unset: the cores this process may run on (``os.sched_getaffinity``).
- Inside a worker it is ``1``, so a training run nested in a worker runs its seeds in turn.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_all_start_methods, get_context
from typing import Any, TypeVar

import torch

from nbsupport.env import device, positive_int_env

R = TypeVar("R")
ENV = "NBSUPPORT_WORKERS"

_DEFAULT_THREADS = torch.get_num_threads()  # torch's default, before any user call in this process
_FN: Callable[[Any], Any] | None = None  # the function forked workers call (inherited, never pickled)


def _threads_from_env() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def cores() -> int:
    """CPU cores this process may keep busy: ``$NBSUPPORT_WORKERS``, else its CPU affinity."""
    n = positive_int_env(ENV, "cores for training", "to use every core")
    if n is not None:
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(n_seeds: int) -> int:
    """Worker processes for ``n_seeds`` seeds: ``min(n_seeds, cores())``, at least 1."""
    return max(1, min(n_seeds, cores()))


def threads_user_set() -> bool:
    """Whether the user chose torch's thread count (``OMP_NUM_THREADS`` or ``torch.set_num_threads``).

    A ``torch.set_num_threads`` call is seen when it changed the count from torch's default
    as read when this module was first imported.
    """
    return _threads_from_env() is not None or torch.get_num_threads() != _DEFAULT_THREADS


@contextlib.contextmanager
def one_thread(threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` torch threads (default: 1 unless the user chose a count).

    Restores the previous count afterwards. Yields the count in use.
    """
    before = torch.get_num_threads()
    if threads is None:
        threads = before if threads_user_set() else 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _init_worker() -> None:
    torch.set_num_threads(1)
    os.environ[ENV] = "1"  # nested training in a worker runs its seeds in turn


def _call(index_task: tuple[int, Any]) -> tuple[int, Any]:
    index, task = index_task
    return index, _FN(task)


def run_tasks(fn: Callable[[Any], R], tasks: Sequence[Any], *, workers: int | None = None,
              on_result: Callable[[Any, R], Any] | None = None,
              cost: Callable[[Any], float] | None = None) -> list[R]:
    """``[fn(task) for task in tasks]``, in forked worker processes with one torch thread each.

    ``tasks`` are any picklable values, e.g. ``(seed, arm)`` pairs: splitting each seed's work
    into independent pieces keeps every core busy where whole seeds would not (3 seeds on 2
    cores leave one core idle for the last seed; 9 ``(seed, arm)`` pieces do not).
    ``cost(task)``, if given, is a task's expected run time in any unit: workers take the
    costliest tasks first (longest processing time first), so no core is left with one long
    task at the end; without it they take the tasks in order. ``workers`` defaults to
    :func:`default_workers` of the task count (``$NBSUPPORT_WORKERS`` or the cores). With one
    worker, one task, no ``fork`` start method, or a device other than the CPU (see below),
    ``fn`` runs here, task after task. Workers are forked, so ``fn`` may be a lambda or a function defined in a
    notebook: it is inherited, never pickled; its results are pickled back (return CPU
    tensors, modules, numbers, DataFrames). ``on_result(task, result)`` is called here as each
    task finishes (in any order), e.g. to advance a progress bar. The results come back in the
    order of ``tasks``; an exception in ``fn`` is raised here.

    When :func:`nbsupport.device` is not the CPU the tasks run here, one after another: the
    device is the parallelism, and a forked child cannot use CUDA once the parent has asked
    for it (``torch.cuda.is_available()`` alone initializes the driver).
    """
    global _FN
    tasks = list(tasks)
    if not tasks:
        raise ValueError("run_tasks: tasks is empty; pass at least one task")
    if workers is None:
        workers = default_workers(len(tasks))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"run_tasks: workers must be a positive int or None, got {workers!r}")
    workers = min(workers, len(tasks))
    if (workers <= 1 or "fork" not in get_all_start_methods() or torch.cuda.is_initialized()
            or device().type != "cpu"):
        out = []
        for task in tasks:
            out.append(fn(task))
            if on_result is not None:
                on_result(task, out[-1])
        return out
    results: list[Any] = [None] * len(tasks)
    previous, _FN = _FN, fn
    try:
        with ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_init_worker) as pool:
            order = sorted(range(len(tasks)), key=lambda i: -cost(tasks[i])) if cost else range(len(tasks))
            futures = [pool.submit(_call, (i, tasks[i])) for i in order]
            try:
                for fut in as_completed(futures):
                    i, res = fut.result()
                    results[i] = res
                    if on_result is not None:
                        on_result(tasks[i], res)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        _FN = previous
    return results


def run_seeds(fn: Callable[[int], R], seeds: Sequence[int], *, workers: int | None = None,
              on_result: Callable[[int, R], Any] | None = None) -> list[R]:
    """``[fn(seed) for seed in seeds]`` over worker processes: :func:`run_tasks` with int seeds.

    ``seeds`` must be a non-empty list of non-negative ints; everything else is as
    :func:`run_tasks` (results in the order of ``seeds``, one torch thread per worker).
    """
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"run_seeds: seeds must be a non-empty list of non-negative ints, got {seeds!r}")
    return run_tasks(fn, seeds, workers=workers, on_result=on_result)
