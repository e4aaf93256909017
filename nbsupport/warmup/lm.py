"""Character-LM experiments shared by the warmup notebooks (02, 03, 04, 06).

- :func:`corpora`: the offline texts as :class:`~nbsupport.data.text.CharCorpus` objects
  sharing one vocabulary (optionally truncated, for the smoke scale);
- :func:`run_lm`: train a :class:`~nbsupport.models.gpt.GPT` with AdamW under a
  :class:`~nbsupport.schedules.Schedule`, from any global step, evaluating on named
  validation sets; :func:`branch` copies a model with its optimizer to continue a run
  (WSD decays branched off one stable trunk);
- :func:`lr_sensitivity`: the LR-sensitivity summary of Wortsman et al. (2023).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
import pandas as pd
import torch

from nbsupport.data.text import CharCorpus, load_corpus, random_batches
from nbsupport.models.gpt import GPT, gpt_loss
from nbsupport.schedules import Schedule
from nbsupport.train import train

__all__ = ["branch", "corpora", "final_loss", "lr_sensitivity", "make_optimizer", "run_lm"]


@cache
def _corpora(names: tuple[str, ...], max_chars: int | None) -> tuple[CharCorpus, ...]:
    texts = [load_corpus(n)[:max_chars] if max_chars else load_corpus(n) for n in names]
    vocab = sorted(set().union(*map(set, texts)))
    return tuple(CharCorpus(t, vocab=vocab) for t in texts)


def corpora(*names: str, max_chars: int | None = None) -> dict[str, CharCorpus]:
    """``name -> CharCorpus`` over one shared vocabulary; ``max_chars`` keeps each text's start."""
    return dict(zip(names, _corpora(tuple(names), max_chars), strict=True))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW as in the small-scale-proxies setup (β2 = 0.95, ε = 1e-8)."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=1e-8, weight_decay=weight_decay)


def branch(model: GPT, optimizer: torch.optim.Optimizer) -> tuple[GPT, torch.optim.Optimizer]:
    """An independent copy of ``model`` with its optimizer state, to continue a run two ways."""
    return copy.deepcopy((model, optimizer))


def run_lm(
    model: GPT,
    data: torch.Tensor,
    schedule: Schedule,
    steps: int,
    *,
    lr: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    start: int = 0,
    batch: int = 16,
    seed: int = 0,
    evals: Mapping[str, torch.Tensor] | None = None,
    eval_every: int | None = None,
    eval_batches: int = 4,
    eval_at_start: bool = False,
    grad_clip: float | None = 1.0,
    progress: bool = True,
    desc: str = "train",
) -> tuple[pd.DataFrame, torch.optim.Optimizer]:
    """Train ``model`` for ``steps`` updates on random windows of ``data``.

    Update ``u`` (global, from ``start``) uses LR ``lr·schedule(u)``: pass ``lr`` for a new
    AdamW or an ``optimizer`` to continue one (its peak LR is kept). Returns the log with
    global steps (``step`` = updates done; columns ``loss``, ``lr``, ``ce``,
    ``max_attn_logit``, ``log_z``, ``val_<name>`` at evaluation steps; a diverged run stops
    with ``diverged=True``) and the optimizer.
    """
    if (lr is None) == (optimizer is None):
        raise ValueError("run_lm: pass exactly one of lr (new AdamW) or optimizer (continue one)")
    if optimizer is None:
        optimizer = make_optimizer(model, lr)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule(start + i))
    gen = torch.Generator().manual_seed(seed * 1_000_003 + start)
    batches = random_batches(data, model.cfg.block, batch, gen)
    evals = dict(evals or {})

    def eval_fn(m: GPT) -> dict[str, float]:
        return {f"val_{k}": m.evaluate(v, batches=eval_batches) for k, v in evals.items()}

    first = None
    if evals and eval_at_start:
        model.eval()
        with torch.no_grad():
            first = {"step": start, **eval_fn(model)}
        model.train()
    log = train(model, batches, gpt_loss, optimizer, steps, scheduler=scheduler, grad_clip=grad_clip,
                eval_fn=eval_fn if evals else None, eval_every=eval_every, progress=progress, desc=desc)
    log["step"] += start
    if first is not None:
        log = pd.concat([pd.DataFrame([first]), log], ignore_index=True)
    return log, optimizer


def final_loss(log: pd.DataFrame, column: str, init: float) -> float:
    """The last value of ``column``; a run that diverged (or never evaluated) counts as ``init``."""
    if "diverged" in log and log["diverged"].fillna(False).astype(bool).any():
        return init
    values = log[column].dropna() if column in log else pd.Series(dtype=float)
    if values.empty or not math.isfinite(values.iloc[-1]):
        return init
    return float(values.iloc[-1])


def lr_sensitivity(losses: Sequence[float], init_loss: float) -> float:
    """LR sensitivity (Wortsman et al. 2023, §2): over a log grid of learning rates,
    ``mean_η [min(loss(η), init_loss)] - min_η loss(η)``; diverged runs (NaN/inf) count as
    ``init_loss``. Lower means the final loss depends less on the LR."""
    arr = np.array([init_loss if not math.isfinite(x) else min(x, init_loss) for x in losses], dtype=float)
    if arr.size == 0:
        raise ValueError("lr_sensitivity: no losses given")
    return float(arr.mean() - arr.min())
