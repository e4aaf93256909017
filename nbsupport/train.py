"""One seeded training loop with a progress bar, periodic evaluation and callbacks, and
``run_seeds`` to train seeds in parallel worker processes on a CPU."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

LossFn = Callable[[torch.nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


def _cycle(batches: Iterable) -> Iterator:
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("train: the batch iterable is empty")


def train(
    model: torch.nn.Module,
    batches: Iterable,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    steps: int,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = None,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    callbacks: Iterable[Callable[[int, dict[str, float]], Any]] = (),
    stop_on_nan: bool = True,
    progress: bool = True,
    desc: str = "train",
) -> pd.DataFrame:
    """Train for ``steps`` optimizer steps, cycling over ``batches``; return the log as a DataFrame.

    ``loss_fn(model, batch)`` returns the loss, or ``(loss, metrics)``. Each row of the log
    holds ``step``, ``loss``, ``lr`` and the metrics; every ``eval_every`` steps (and at the
    end) ``eval_fn(model)`` adds its values under the same step. Each callback is called as
    ``cb(step, row)`` after every step. A non-finite loss stops training (the row is kept,
    with ``diverged=True``) unless ``stop_on_nan`` is False.
    """
    if steps <= 0:
        raise ValueError(f"train: steps must be positive, got {steps}")
    rows: list[dict[str, Any]] = []
    it = _cycle(batches)
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False)

    def evaluate(row: dict[str, Any]) -> None:
        model.eval()
        with torch.no_grad():
            row.update(eval_fn(model))
        model.train()

    model.train()
    for step in bar:
        out = loss_fn(model, next(it))
        loss, metrics = out if isinstance(out, tuple) else (out, {})
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        row = {"step": step, "loss": value, "lr": optimizer.param_groups[0]["lr"], **metrics}
        if not math.isfinite(value):
            row["diverged"] = True
            rows.append(row)
            if stop_on_nan:
                break
            continue
        loss.backward()
        if grad_clip is not None:
            row["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if eval_fn is not None and ((eval_every and step % eval_every == 0) or step == steps):
            evaluate(row)
        rows.append(row)
        for cb in callbacks:
            cb(step, row)
        if step % 10 == 0 or step == steps:
            bar.set_postfix(loss=f"{value:.4f}")
    return pd.DataFrame(rows)


def default_workers(n_tasks: int) -> int:
    """How many seed workers to start: ``$NBSUPPORT_WORKERS`` when set (the batch runner sets
    it so parallel notebooks share the cores), else the usable CPU cores; never more than tasks."""
    env = os.environ.get("NBSUPPORT_WORKERS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"NBSUPPORT_WORKERS={env!r}: set a positive integer (1 = no worker processes)")
        cores = int(env)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_tasks))


_WORKER_FN: Callable[[int], Any] | None = None


def _start_worker(fn: Callable[[int], Any]) -> None:
    """Worker start-up: keep ``fn`` (handed over by fork, never pickled, so lambdas and
    notebook functions work) and use one intra-op thread, so seeds never oversubscribe."""
    global _WORKER_FN
    _WORKER_FN = fn
    torch.set_num_threads(1)


def _call_worker_fn(seed: int) -> Any:
    return _WORKER_FN(seed)


def run_seeds(fn: Callable[[int], Any], seeds: Sequence[int], *, workers: int | None = None) -> list[Any]:
    """``[fn(seed) for seed in seeds]``, computed in parallel worker processes on a CPU.

    Workers are forked (so ``fn`` may be defined in the notebook), run one torch thread each
    and return their results by pickling (CPU tensors, state dicts, DataFrames, numbers).
    With one worker, one seed, no ``fork`` start method, or CUDA already in use, the seeds
    run in turn in this process. Results come back in the order of ``seeds``.
    """
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"run_seeds: seeds must be a non-empty list of non-negative ints, got {seeds!r}")
    n = default_workers(len(seeds)) if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"run_seeds: workers must be >= 1, got {workers}")
    sequential = (n == 1 or len(seeds) == 1 or "fork" not in multiprocessing.get_all_start_methods()
                  or torch.cuda.is_initialized())
    if sequential:
        return [fn(s) for s in seeds]
    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker, initargs=(fn,))
    try:
        return list(pool.map(_call_worker_fn, seeds))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
