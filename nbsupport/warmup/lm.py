"""Character-LM experiments shared by the warmup notebooks (02, 03, 04, 06).

- :func:`corpora`: the offline texts as :class:`~nbsupport.data.text.CharCorpus` objects
  sharing one vocabulary (optionally truncated, for the smoke scale); :func:`held_out_works`
  splits one corpus by work (e.g. some Shakespeare plays held out as a close downstream corpus);
- :func:`run_lm`: train a :class:`~nbsupport.models.gpt.GPT` with AdamW under a
  :class:`~nbsupport.schedules.Schedule` on the shared loop (:func:`nbsupport.train.fit`), from
  any global step, evaluating on named validation sets; the :class:`~nbsupport.train.Fit` it
  returns continues the run with its optimizer state, as often as wanted (WSD decays branched
  off one stable trunk);
- :func:`lr_sensitivity`: the LR-sensitivity summary of Wortsman et al. (2023).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from functools import cache

import numpy as np
import pandas as pd
import torch

from nbsupport.data.text import CharCorpus, load_corpus, load_lines, window_sampler
from nbsupport.models.gpt import GPT, gpt_loss
from nbsupport.schedules import Schedule
from nbsupport.train import Fit
from nbsupport.train import fit as train_fit

__all__ = ["corpora", "final_loss", "held_out_works", "lr_sensitivity", "make_optimizer", "run_lm"]


@cache
def _corpora(names: tuple[str, ...], max_chars: int | None) -> tuple[CharCorpus, ...]:
    texts = [load_corpus(n)[:max_chars] if max_chars else load_corpus(n) for n in names]
    vocab = sorted(set().union(*map(set, texts)))
    return tuple(CharCorpus(t, vocab=vocab) for t in texts)


def corpora(*names: str, max_chars: int | None = None) -> dict[str, CharCorpus]:
    """``name -> CharCorpus`` over one shared vocabulary; ``max_chars`` keeps each text's start."""
    return dict(zip(names, _corpora(tuple(names), max_chars), strict=True))


@cache
def _works(name: str) -> dict[str, str]:
    texts: dict[str, list[str]] = {}
    for work, line in load_lines(name, min_chars=1):
        texts.setdefault(work, []).append(line)
    return {w: "\n".join(lines) + "\n" for w, lines in texts.items()}


def held_out_works(name: str, every: int = 5, max_chars: int | None = None) -> dict[str, CharCorpus]:
    """Split corpus ``name`` by work: every ``every``-th work (in the corpus's fixed order,
    starting with the first) goes to ``"held_out"``, the rest to ``"kept"``; both share one
    vocabulary. Lines are stripped and blank lines dropped (:func:`load_lines`).
    ``max_chars`` keeps each part's start. The parts' ``work_names`` list their works."""
    if not isinstance(every, int) or every < 2:
        raise ValueError(f"held_out_works: every must be an int >= 2, got {every!r}")
    works = _works(name)
    names = list(works)
    held = names[::every]
    kept = [w for w in names if w not in held]
    texts = {"kept": "".join(works[w] for w in kept), "held_out": "".join(works[w] for w in held)}
    if max_chars:
        texts = {k: t[:max_chars] for k, t in texts.items()}
    vocab = sorted(set().union(*map(set, texts.values())))
    out = {k: CharCorpus(t, vocab=vocab) for k, t in texts.items()}
    out["kept"].work_names, out["held_out"].work_names = kept, held
    return out


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW as in the small-scale-proxies setup (Wortsman et al. 2023, §2: β2 = 0.95,
    ε = 1e-8 by default; §3.4 studies larger ε)."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def run_lm(
    model: GPT | Fit,
    data: torch.Tensor,
    schedule: Schedule,
    steps: int,
    *,
    lr: float,
    start: int = 0,
    batch: int = 16,
    seed: int | None = None,
    evals: Mapping[str, torch.Tensor] | None = None,
    eval_every: int | None = None,
    eval_at: Collection[int] = (),
    eval_batches: int = 4,
    eval_at_start: bool = False,
    grad_clip: float | None = 1.0,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    progress: bool = True,
    desc: str = "train",
) -> tuple[pd.DataFrame, Fit]:
    """Train a GPT for ``steps`` updates on random windows of ``data`` with AdamW
    (:func:`make_optimizer`: peak ``lr``, ``weight_decay``, ``betas``, ``eps``), through
    :func:`nbsupport.train.fit`; update ``u`` (global) uses LR ``lr·schedule(u)``.

    ``model`` is either a :class:`~nbsupport.models.gpt.GPT`, trained in place with a fresh
    optimizer from global step ``start`` (the updates it already had elsewhere; run ``seed``,
    default 0), or the :class:`~nbsupport.train.Fit` a previous call returned, continued with
    its optimizer state from where it stopped (its seed; the Fit itself is left as it was, so one
    Fit may branch into several continuations, e.g. WSD decays off one stable trunk). Data order
    derives from the seed and the global step the call starts at (:func:`nbsupport.train.fit`).

    Returns ``(log, fit)``: the log with global steps (``step`` = updates done; columns
    ``seed``, ``loss``, ``lr``, ``ce``, ``max_attn_logit``, ``log_z``, ``grad_norm``,
    ``val_<name>`` at evaluation steps; a diverged run stops with ``diverged=True``) and the
    :class:`~nbsupport.train.Fit` to continue. Evaluation happens every ``eval_every`` updates,
    at the end, at the global steps in ``eval_at`` (dense early evaluation) and, with
    ``eval_at_start``, before the first update.
    """
    if isinstance(model, Fit):
        if start:
            raise ValueError("run_lm: a Fit goes on from its own step; start= is for a GPT module")
        seed = model.seeds[0] if seed is None else seed
        first_model = model.models.get(seed)
        if first_model is None:
            raise ValueError(f"run_lm: the Fit has seeds {model.seeds}, not {seed}")
        start = int(model.log.step[model.log.seed == seed].max())
    elif isinstance(model, GPT):
        seed = 0 if seed is None else seed
        first_model = model
    else:
        raise TypeError(f"run_lm: model must be a GPT or the Fit of an earlier run_lm, got {type(model).__name__}")
    evals = dict(evals or {})

    def eval_fn(m: GPT) -> dict[str, float]:
        return {f"val_{k}": m.evaluate(v, batches=eval_batches) for k, v in evals.items()}

    first = {"seed": seed, "step": start, **eval_fn(first_model)} if evals and eval_at_start else None
    res = train_fit(model, window_sampler(data, first_model.cfg.block, batch), steps=steps, loss=gpt_loss,
                    optimizer=lambda m: make_optimizer(m, lr, weight_decay, betas, eps), lr=lr, schedule=schedule,
                    grad_clip=grad_clip, eval_fn=eval_fn if evals else None, eval_every=eval_every if evals else None,
                    eval_at=eval_at if evals else (), seeds=[seed], start=0 if isinstance(model, Fit) else start,
                    workers=1, batched=False, device=next(first_model.parameters()).device, progress=progress,
                    desc=desc)
    if not isinstance(model, Fit):
        model.load_state_dict(res.models[seed].state_dict())
    log = res.log
    if first is not None:
        log = pd.concat([pd.DataFrame([first]), log], ignore_index=True)
    return log, res


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
