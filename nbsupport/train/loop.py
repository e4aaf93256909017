"""``fit``: one seeded training loop for every notebook, over one or several seeds.

Randomness comes from one int seed per run, and nothing else:

- **init**: ``torch.manual_seed(seed)`` right before ``model(seed)`` builds the module (so
  ``fit(lambda s: Net(), ...)`` initializes as ``torch.manual_seed(s); Net()`` does);
- **data order**: a ``torch.Generator`` seeded from ``seed`` (through NumPy's
  ``SeedSequence``, so it is not the init stream) draws the minibatches, or is handed to a
  batch sampler;
- **dropout** and any other draw from torch's global generator during training: the global
  generator reseeded from ``seed`` (a third ``SeedSequence`` child) after the model is built.

The same seed gives the same run whichever way the seeds are spread (one after another, in
worker processes, or batched under ``vmap``), up to float rounding; dropout under ``vmap``
is the exception: it draws from one generator for the whole batch of seeds.
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from nbsupport.progress import progress as tqdm
from nbsupport.scales import capped_steps
from nbsupport.schedules import Schedule
from nbsupport.train.parallel import default_workers, one_thread, run_seeds

Batch = Any
LossFn = Callable[[nn.Module, Batch], "torch.Tensor | tuple[torch.Tensor, Mapping[str, Any]]"]
Sampler = Callable[[int, torch.Generator], Batch]
EVAL_KEYS = "_eval_keys"  # a log row's evaluation columns (dropped from the returned log)

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD,
}
# optimizers whose update is elementwise, so one optimizer over stacked seeds equals one per seed
ELEMENTWISE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.RMSprop,
               torch.optim.Adagrad)


@dataclass
class Fit:
    """What :func:`fit` returns.

    ``log``: one row per seed and step (1..steps) with ``seed``, ``step``, ``loss``, ``lr``
    (the learning rate of the first parameter group used for that step's update), the
    loss's metrics, ``grad_norm`` (before clipping, when ``grad_clip`` is set), the eval
    metrics on evaluation steps, and ``diverged`` when a loss was not finite.
    ``models``: seed -> trained module (on the training device; on CPU when trained in
    worker processes). ``mode``: "sequential", "parallel" or "batched".
    ``optimizer_states``: seed -> the optimizer's ``state_dict()`` at the end, so that
    ``fit(this_fit, ...)`` continues training where it stopped.
    """

    log: pd.DataFrame
    models: dict[int, nn.Module]
    mode: str
    eval_keys: tuple[str, ...] = field(default=())
    optimizer_states: dict[int, dict] = field(default_factory=dict, repr=False)

    @property
    def seeds(self) -> list[int]:
        return list(self.models)

    def __repr__(self) -> str:
        last = self.final.loss
        return (f"Fit({len(self.models)} seeds {self.seeds}, {self.mode}, {int(self.log.step.max())} steps, "
                f"final loss {last.mean():.4g} (min {last.min():.4g}, max {last.max():.4g}))")

    @property
    def evals(self) -> pd.DataFrame:
        """The evaluation rows: ``seed``, ``step`` and the eval metrics."""
        if not self.eval_keys:
            return self.log.iloc[:0][["seed", "step"]]
        rows = self.log.dropna(subset=list(self.eval_keys), how="all")
        return rows[["seed", "step", *self.eval_keys]].reset_index(drop=True)

    @property
    def final(self) -> pd.DataFrame:
        """The last logged row of each seed (its final loss and final evaluation), indexed by seed."""
        return self.log.groupby("seed", sort=False).tail(1).set_index("seed")


@dataclass
class _Run:
    """Everything one seed's training needs (inherited by forked workers)."""

    model: Callable[[int], nn.Module]
    sampler: Callable[[], Sampler]
    loss: LossFn
    steps: int
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    schedule: Callable[[int], float] | None
    grad_clip: float | None
    eval_fn: Callable[[nn.Module], Mapping[str, Any]] | None
    eval_every: int | None
    callbacks: tuple[Callable[[int, dict], Any], ...]
    device: torch.device
    stop_on_nan: bool
    starts: dict[int, int] = field(default_factory=dict)  # seed -> updates already done (a Fit continued, start=)
    optimizer_states: dict[int, dict] = field(default_factory=dict)
    eval_at: frozenset[int] = frozenset()  # global steps with an extra evaluation

    def eval_due(self, step: int, start: int = 0) -> bool:
        return self.eval_fn is not None and (step == start + self.steps or step in self.eval_at
                                             or bool(self.eval_every and step % self.eval_every == 0))


# ---------------------------------------------------------------- seeds and data


def derived_seed(seed: int, stream: int, start: int = 0) -> int:
    """The seed of random stream ``stream`` (1: data order, 2: dropout) of run ``seed``; a run
    continued after ``start`` updates draws fresh streams (not a replay of the first part)."""
    child = np.random.SeedSequence(seed if start == 0 else [seed, start]).spawn(stream + 1)[stream]
    return int(child.generate_state(1, np.uint64)[0] >> 1)


def tensor_sampler(tensors: Sequence[torch.Tensor], batch_size: int) -> Callable[[], Sampler]:
    """Minibatches of ``batch_size`` rows without replacement: each epoch is a fresh permutation
    drawn from the run's generator; the last incomplete batch of an epoch is dropped (every
    batch has the same size); ``batch_size`` above the row count gives the whole data."""
    n = len(tensors[0])
    size = min(batch_size, n)

    def make() -> Sampler:
        state = {"perm": None, "pos": n}

        def sample(step: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
            if state["pos"] + size > n:
                state["perm"], state["pos"] = torch.randperm(n, generator=generator), 0
            idx = state["perm"][state["pos"]:state["pos"] + size]
            state["pos"] += size
            return tuple(t[idx.to(t.device)] for t in tensors)

        return sample

    return make


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Tensors in ``batch`` (nested tuples, lists, dicts) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def cross_entropy_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The default loss: ``cross_entropy(model(x), y)`` on a batch ``(x, y)``."""
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError("fit: the default loss expects batches (x, y); pass loss=fn(model, batch) for other data")
    x, y = batch
    return F.cross_entropy(model(x), y)


def split_loss(out: Any) -> tuple[torch.Tensor, Mapping[str, Any]]:
    """``(loss, metrics)`` from what a loss function returned."""
    loss, metrics = out if isinstance(out, tuple) else (out, {})
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"fit: loss(model, batch) must return a scalar tensor or (tensor, metrics dict), "
                         f"got {type(loss).__name__}")
    if not isinstance(metrics, Mapping):
        raise ValueError(f"fit: the metrics a loss returns must be a dict, got {type(metrics).__name__}")
    return loss, metrics


def _floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


# ---------------------------------------------------------------- one seed


def build(run: _Run, seed: int) -> nn.Module:
    """The module of run ``seed``, initialized under ``torch.manual_seed(seed)``, on the device."""
    torch.manual_seed(seed)
    module = run.model(seed)
    if not isinstance(module, nn.Module):
        raise TypeError(f"fit: model(seed) must return an nn.Module, got {type(module).__name__}")
    return module.to(run.device)


def optimizer_for(run: _Run, model: nn.Module, seed: int) -> tuple[torch.optim.Optimizer, Any]:
    """The seed's optimizer (its state restored when continuing) and LR scheduler."""
    opt = run.make_optimizer(model)
    if seed in run.optimizer_states:
        base = [g["lr"] for g in opt.param_groups]
        opt.load_state_dict(copy.deepcopy(run.optimizer_states[seed]))  # the Fit continued stays as it was
        for group, lr in zip(opt.param_groups, base):  # this call's learning rates, not the last ones
            group["lr"] = lr
            group.pop("initial_lr", None)
    return opt, lr_scheduler(run, opt, run.starts.get(seed, 0))


def lr_scheduler(run: _Run, opt: torch.optim.Optimizer, start: int = 0) -> torch.optim.lr_scheduler.LRScheduler | None:
    if run.schedule is None:
        return None
    if isinstance(run.schedule, Schedule) and start == 0:
        return run.schedule.lambda_lr(opt)
    schedule = run.schedule
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: schedule(start + i))


def evaluate(run: _Run, model: nn.Module) -> dict[str, float]:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = run.eval_fn(model)
    model.train(was)
    if not isinstance(out, Mapping):
        raise ValueError(f"fit: eval_fn(model) must return a dict of numbers, got {type(out).__name__}")
    return _floats(out)


def add_eval(row: dict, values: dict[str, float]) -> None:
    """Add evaluation values to a log row, remembering which columns are evaluations."""
    row.update(values)
    row[EVAL_KEYS] = tuple(values)


def train_one(run: _Run, seed: int, bar: Any = None) -> tuple[list[dict], nn.Module, dict]:
    """Train seed ``seed`` here; return its log rows, trained module and optimizer state."""
    model = build(run, seed)
    start = run.starts.get(seed, 0)
    generator = torch.Generator().manual_seed(derived_seed(seed, 1, start))
    torch.manual_seed(derived_seed(seed, 2, start))
    opt, sched = optimizer_for(run, model, seed)
    sample = run.sampler()
    rows: list[dict] = []
    model.train()
    for step in range(start + 1, start + run.steps + 1):
        loss, metrics = split_loss(run.loss(model, to_device(sample(step, generator), run.device)))
        value = float(loss.detach())
        row = {"seed": seed, "step": step, "loss": value, "lr": opt.param_groups[0]["lr"], **_floats(metrics)}
        if bar is not None:
            bar.update(1)
        if not math.isfinite(value):
            row["diverged"] = True
            rows.append(row)
            if run.stop_on_nan:
                break
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if run.grad_clip is not None:
            row["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), run.grad_clip))
        opt.step()
        if sched is not None:
            sched.step()
        if run.eval_due(step, start):
            add_eval(row, evaluate(run, model))
        rows.append(row)
        for cb in run.callbacks:
            cb(step, row)
        if bar is not None and (step % 10 == 0 or step == start + run.steps):
            bar.set_postfix(seed=seed, loss=f"{value:.4f}", refresh=False)
    return rows, model, opt.state_dict()


@functools.cache
def warm_up() -> None:
    """One tiny training step here, before forking workers: torch imports its compiler stack
    (``torch._dynamo``, seconds) the first time an optimizer is built; done once in the
    parent, every forked worker inherits it instead of importing it again."""
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.0)
    (w * 2).sum().backward()
    opt.step()


def _train_cpu(run: _Run, seed: int) -> tuple[list[dict], nn.Module, dict]:
    rows, model, state = train_one(run, seed)
    return rows, model.cpu(), _cpu(state)


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj


# ---------------------------------------------------------------- argument checks


def _positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"fit: {name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def _model_factory(model: Any) -> Callable[[int], nn.Module]:
    if isinstance(model, Fit):
        return lambda seed: copy.deepcopy(model.models[seed])
    if isinstance(model, nn.Module):
        return lambda seed: copy.deepcopy(model)
    if callable(model):
        return model
    raise TypeError(f"fit: model must be an nn.Module or a factory seed -> nn.Module, got {type(model).__name__}")


def _sampler(data: Any, batch_size: int | None) -> Callable[[], Sampler]:
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, tuple | list) and data and all(isinstance(t, torch.Tensor) for t in data):
        if batch_size is None:
            raise ValueError("fit: tensor data is sampled in minibatches: pass batch_size=")
        _positive_int("batch_size", batch_size)
        n = {len(t) for t in data}
        if len(n) != 1 or 0 in n:
            raise ValueError(f"fit: the data tensors must have the same, non-zero number of rows, got "
                             f"{[len(t) for t in data]}")
        return tensor_sampler(tuple(data), int(batch_size))
    if callable(data):
        if batch_size is not None:
            raise ValueError("fit: batch_size applies to tensor data; a batch sampler chooses its own batches")
        return lambda: data
    raise TypeError(f"fit: data must be tensors (X, y) or a batch sampler (step, generator) -> batch, got "
                    f"{type(data).__name__}; wrap an iterator as a sampler that draws from the generator")


def _optimizer(optimizer: Any, lr: float, weight_decay: float,
               kwargs: Mapping[str, Any] | None) -> Callable[[nn.Module], torch.optim.Optimizer]:
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"fit: unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)} "
                             f"or pass a function module -> torch.optim.Optimizer")
        cls, extra = OPTIMIZERS[optimizer.lower()], dict(kwargs or {})
        return lambda m: cls([p for p in m.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay,
                             **extra)
    if callable(optimizer):
        if kwargs:
            raise ValueError("fit: optimizer_kwargs apply to a named optimizer; put them in your optimizer function")

        def make(m: nn.Module) -> torch.optim.Optimizer:
            opt = optimizer(m)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(f"fit: optimizer(model) must return a torch.optim.Optimizer, got {type(opt).__name__}")
            return opt

        return make
    raise TypeError(f"fit: optimizer must be a name or a function module -> Optimizer, got {type(optimizer).__name__}")


def _seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, Integral) and not isinstance(seeds, bool):
        raise TypeError(f"fit: seeds is a list of int seeds; for {seeds} seeds pass seeds=range({seeds})")
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, Integral) or s < 0 for s in seeds):
        raise ValueError(f"fit: seeds must be a non-empty list of non-negative ints, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"fit: seeds must be distinct, got {seeds!r}")
    return [int(s) for s in seeds]


# ---------------------------------------------------------------- fit


def fit(
    model: nn.Module | Callable[[int], nn.Module] | Fit,
    data: Sequence[torch.Tensor] | torch.Tensor | Sampler,
    *,
    steps: int,
    batch_size: int | None = None,
    loss: LossFn | None = None,
    optimizer: str | Callable[[nn.Module], torch.optim.Optimizer] = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    schedule: Schedule | Callable[[int], float] | None = None,
    grad_clip: float | None = None,
    eval_fn: Callable[[nn.Module], Mapping[str, Any]] | None = None,
    eval_every: int | None = None,
    eval_at: Iterable[int] = (),
    callbacks: Iterable[Callable[[int, dict], Any]] = (),
    seeds: Iterable[int] | None = None,
    start: int = 0,
    workers: int | None = None,
    batched: bool | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
    stop_on_nan: bool = True,
    progress: bool = True,
    desc: str = "train",
) -> Fit:
    """Train one model per seed for ``steps`` optimizer steps; return a :class:`Fit`.

    Args:
        model: a factory ``seed -> nn.Module`` (called after ``torch.manual_seed(seed)``), or
            a module, deep-copied for each seed (every seed then starts from its weights;
            the module itself is not changed), or a :class:`Fit` to continue: each seed
            goes on from its trained module (copied) and optimizer state, its log steps,
            ``schedule`` and batch sampler count on from the updates already done (so a
            schedule is read at global steps, and one Fit may branch into several).
        data: tensors ``(X, y)`` (any number of tensors with the same rows, or one tensor),
            drawn in minibatches of ``batch_size`` rows without replacement, a fresh
            permutation each epoch, the last incomplete batch dropped; or a batch sampler
            ``data(step, generator) -> batch`` (``step`` 1..steps, as in the log) that draws
            its randomness from ``generator``. Tensors in a batch are moved to ``device``.
        steps: optimizer steps per seed (at most ``$NBSUPPORT_MAX_STEPS`` when that step cap
            is set: see :mod:`nbsupport.scales`).
        loss: ``loss(model, batch)`` returns a scalar loss or ``(loss, metrics)``, metrics a
            dict of numbers or 0-d tensors logged per step. Default: cross-entropy of
            ``model(x)`` against ``y``. For ``batched`` runs the metrics must be tensors
            (no ``float()``/``.item()`` inside the loss).
        optimizer: "adamw", "adam" or "sgd" (built with ``lr``, ``weight_decay`` and
            ``optimizer_kwargs``, e.g. ``{"betas": (0.9, 0.95)}`` or ``{"momentum": 0.9}``)
            or a function ``module -> torch.optim.Optimizer`` (e.g. with parameter groups).
        schedule: a :class:`nbsupport.schedules.Schedule` (or any ``step -> multiplier``),
            applied through ``LambdaLR``: the update of log step t uses ``lr * schedule(t-1)``
            (t counts from the updates already done when continuing a Fit).
        grad_clip: clip each seed's gradient to this global L2 norm (``clip_grad_norm_``).
        eval_fn: ``eval_fn(model) -> dict`` run in eval mode under ``no_grad`` every
            ``eval_every`` steps, after the (log) steps in ``eval_at`` and after the last
            step; its values join that step's row.
        callbacks: ``cb(step, row)`` after each step, in the process that trains the seed.
        seeds: the int seeds, one run each (see the module docstring for what derives from
            the seed); ``range(SEEDS)`` in the notebooks. Default ``[0]``, or the seeds of
            the Fit being continued.
        start: for a module or factory (not a Fit) that goes on from a run trained
            elsewhere: the updates already done, so that log steps, ``schedule`` and the data
            stream count on from there, as when continuing a Fit, with a fresh optimizer.
        workers: worker processes for several seeds on CPU (default
            :func:`nbsupport.train.default_workers`: ``$NBSUPPORT_WORKERS`` or the cores);
            1 trains the seeds here, one after another.
        batched: stack the seeds into one model (``torch.func.stack_module_state``,
            ``functional_call`` under ``vmap``, one optimizer, per-seed clipping). Default:
            on CUDA with several seeds and an elementwise optimizer; never on CPU, where
            vmapped seeds cost as much as sequential ones and workers win. A model that
            ``vmap`` cannot run falls back to one seed after another, with a warning.
        device: where to train (default :func:`nbsupport.device`).
        threads: torch threads when training in this process (default 1, unless the user
            set ``OMP_NUM_THREADS`` or called ``torch.set_num_threads``); workers use 1.
        stop_on_nan: a non-finite loss stops that seed (its row has ``diverged=True``);
            False skips the update and goes on.
        progress: show a tqdm progress bar.

    Example::

        res = fit(lambda s: MLP(), (X, y), steps=500, batch_size=128, lr=1e-3,
                  schedule=schedules.cosine(50, 500), seeds=range(3))
        res.log.groupby("step").loss.mean().plot(); model = res.models[0]
    """
    steps = capped_steps(_positive_int("steps", steps))  # at most $NBSUPPORT_MAX_STEPS (nbsupport.scales)
    eval_every = _positive_int("eval_every", eval_every, allow_none=True)
    if eval_every is not None and eval_fn is None:
        raise ValueError("fit: eval_every needs an eval_fn(model) -> dict to run")
    eval_at = frozenset(eval_at)
    if eval_at and (eval_fn is None or not all(isinstance(t, Integral) and not isinstance(t, bool) for t in eval_at)):
        raise ValueError("fit: eval_at is a collection of int steps and needs an eval_fn(model) -> dict to run")
    if isinstance(start, bool) or not isinstance(start, Integral) or start < 0:
        raise ValueError(f"fit: start must be a non-negative int (updates already done), got {start!r}")
    if start and isinstance(model, Fit):
        raise ValueError("fit: a Fit being continued counts its own updates; start= is for a module or factory")
    if grad_clip is not None and (isinstance(grad_clip, bool) or not isinstance(grad_clip, Real) or not grad_clip > 0):
        raise ValueError(f"fit: grad_clip must be a positive number or None, got {grad_clip!r}")
    if isinstance(lr, bool) or not isinstance(lr, Real) or not lr >= 0:
        raise ValueError(f"fit: lr must be a non-negative number, got {lr!r}")
    if schedule is not None and not callable(schedule):
        raise TypeError(f"fit: schedule must be a nbsupport.schedules.Schedule or step -> multiplier, got {schedule!r}")
    if loss is not None and not callable(loss):
        raise TypeError(f"fit: loss must be a function (model, batch) -> loss, got {type(loss).__name__}")
    seeds = _seeds(seeds if seeds is not None else model.seeds if isinstance(model, Fit) else [0])
    workers = _positive_int("workers", workers, allow_none=True)
    from nbsupport.env import device as default_device

    dev = torch.device(device) if device is not None else default_device()
    run = _Run(model=_model_factory(model), sampler=_sampler(data, batch_size), loss=loss or cross_entropy_loss,
               steps=steps, make_optimizer=_optimizer(optimizer, float(lr), float(weight_decay), optimizer_kwargs),
               schedule=schedule, grad_clip=None if grad_clip is None else float(grad_clip), eval_fn=eval_fn,
               eval_every=eval_every, callbacks=tuple(callbacks), device=dev, stop_on_nan=stop_on_nan,
               eval_at=eval_at)
    if isinstance(model, Fit):
        run.starts, run.optimizer_states = _continued(model, seeds), model.optimizer_states
    elif start:
        run.starts = dict.fromkeys(seeds, int(start))

    auto = batched is None
    if auto:
        batched = dev.type == "cuda" and len(seeds) > 1 and stop_on_nan
    elif batched and not stop_on_nan:
        raise ValueError("fit: batched seeds stop at a non-finite loss; pass stop_on_nan=True or batched=False")
    if batched:
        from nbsupport.train.batched import BatchingError, train_batched

        try:
            with one_thread(threads):
                rows, models, states = train_batched(run, seeds, progress=progress, desc=desc)
            return _result(rows, models, states, "batched")
        except BatchingError as err:
            if not auto:
                raise
            warnings.warn(f"fit: training the seeds one after another: they cannot be batched ({err})",
                          stacklevel=2)

    n_workers = 1 if dev.type != "cpu" else (workers or default_workers(len(seeds)))
    if n_workers > 1 and len(seeds) > 1:
        bar = tqdm(total=len(seeds), desc=f"{desc} ({min(n_workers, len(seeds))} workers)", unit="seed",
                   disable=not progress, leave=False)
        warm_up()
        with bar:
            out = run_seeds(lambda s: _train_cpu(run, s), seeds, workers=n_workers,
                            on_result=lambda s, r: bar.update(1))
        return _result([r for rows, _, _ in out for r in rows], {s: m for s, (_, m, _) in zip(seeds, out)},
                       {s: st for s, (_, _, st) in zip(seeds, out)}, "parallel")

    rows, models, states = [], {}, {}
    with one_thread(threads), tqdm(total=steps * len(seeds), desc=desc, disable=not progress, leave=False) as bar:
        for s in seeds:
            seed_rows, models[s], states[s] = train_one(run, s, bar)
            rows += seed_rows
    return _result(rows, models, states, "sequential")


def _continued(previous: Fit, seeds: list[int]) -> dict[int, int]:
    """Seed -> updates done in ``previous``, for the seeds to continue (each must have finished)."""
    missing = [s for s in seeds if s not in previous.models]
    if missing:
        raise ValueError(f"fit: cannot continue seeds {missing}: the Fit being continued has seeds {previous.seeds}")
    if "diverged" in previous.log:
        bad = sorted(set(previous.log.seed[previous.log.diverged.fillna(False).astype(bool)]) & set(seeds))
        if bad:
            raise ValueError(f"fit: seeds {bad} diverged in the Fit being continued; continue the others "
                             f"(seeds=[...]) or train them again")
    return {s: int(previous.log.step[previous.log.seed == s].max()) for s in seeds}


def _result(rows: list[dict], models: dict[int, nn.Module], states: dict[int, dict], mode: str) -> Fit:
    eval_keys: dict[str, None] = {}
    for r in rows:
        eval_keys.update(dict.fromkeys(r.pop(EVAL_KEYS, ())))
    log = pd.DataFrame(rows)
    first = ["seed", "step", "loss", "lr"]
    log = log[first + [c for c in log.columns if c not in first]]
    return Fit(log=log, models=models, mode=mode, eval_keys=tuple(eval_keys), optimizer_states=states)


def fit_in_place(model: nn.Module, data: Sequence[torch.Tensor] | torch.Tensor | Sampler, *, seed: int = 0,
                 **kwargs: Any) -> pd.DataFrame:
    """One seed of :func:`fit` that trains ``model`` itself: it starts from the module's weights as
    given (initialize it under ``torch.manual_seed(seed)`` as usual), data order and dropout derive
    from ``seed`` as in :func:`fit`, the trained weights are copied back into ``model``, and the log
    (one row per step, ``seed`` column included) is returned. Trains here (``workers=1``), on the
    module's device unless ``device=`` says otherwise; the other keyword arguments are
    :func:`fit`'s."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit_in_place: model must be an nn.Module (trained in place), got {type(model).__name__}; "
                        f"for a factory seed -> module use fit")
    for key in ("seeds", "workers", "batched"):
        if key in kwargs:
            raise ValueError(f"fit_in_place trains one seed here: pass seed=, not {key}=; for several seeds use fit")
    first = next(model.parameters(), None)
    kwargs.setdefault("device", first.device if first is not None else None)
    res = fit(model, data, seeds=[seed], workers=1, batched=False, **kwargs)
    model.load_state_dict(res.models[seed].state_dict())
    return res.log
