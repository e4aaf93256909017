"""The first training loop, ``train(model, batches, loss_fn, optimizer, steps)``: kept until every caller moves to :func:`nbsupport.train.fit`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pandas as pd
import torch

from nbsupport.progress import progress as tqdm
from nbsupport.scales import capped_steps

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
    ``cb(step, row)`` after every step; ``$NBSUPPORT_MAX_STEPS`` caps ``steps``
    (:mod:`nbsupport.scales`). A non-finite loss stops training (the row is kept,
    with ``diverged=True``) unless ``stop_on_nan`` is False.
    """
    if steps <= 0:
        raise ValueError(f"train: steps must be positive, got {steps}")
    steps = capped_steps(steps)  # at most $NBSUPPORT_MAX_STEPS (nbsupport.scales)
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
