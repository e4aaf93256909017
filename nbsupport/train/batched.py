"""Several seeds as one model: stacked parameters under ``vmap``, one optimizer, per-seed clipping.

The parameters of the seeds' modules are stacked along a new first dimension
(``torch.func.stack_module_state``); each step runs the loss of every seed on its own batch
with ``torch.func.functional_call`` under ``torch.func.vmap`` and backpropagates the sum of
the seeds' losses, which gives each seed exactly its own gradient (the seeds share no
parameters). One optimizer over the stacked tensors equals one optimizer per seed when its
update is elementwise (Adam, AdamW, SGD with momentum, RMSprop, Adagrad); gradient clipping
scales each seed's slice by that seed's own norm, as ``clip_grad_norm_`` would.

On a GPU a small model leaves the device idle and the seeds ride along almost free; on a CPU
the steps are arithmetic-bound and stacked seeds cost about as much as running them in turn.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from nbsupport.progress import progress as tqdm
from nbsupport.train.loop import (
    ELEMENTWISE,
    _floats,
    _Run,
    add_eval,
    build,
    derived_seed,
    evaluate,
    lr_scheduler,
    split_loss,
    to_device,
)


class BatchingError(RuntimeError):
    """The seeds cannot be trained as one batched model (the message says why)."""


class _LossModule(nn.Module):
    """``loss(model, batch)`` as a module's forward, so ``functional_call`` swaps the model's parameters."""

    def __init__(self, model: nn.Module, loss: Any) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch: Any) -> Any:
        return self.loss(self.model, batch)


def _stack(batches: list[Any]) -> Any:
    first = batches[0]
    if isinstance(first, torch.Tensor):
        if any(b.shape != first.shape for b in batches):
            raise BatchingError(f"the seeds' batches differ in shape ({[tuple(b.shape) for b in batches]})")
        return torch.stack(batches)
    if isinstance(first, tuple | list):
        return type(first)(_stack(list(parts)) for parts in zip(*batches))
    if isinstance(first, dict):
        return {k: _stack([b[k] for b in batches]) for k in first}
    raise BatchingError(f"a batch holds a {type(first).__name__}; batched seeds need batches of tensors")


def _clip(grads: list[torch.Tensor], max_norm: float, n: int) -> torch.Tensor:
    """Scale each seed's gradients to global norm <= max_norm; return the norms before clipping."""
    norms = torch.stack([g.reshape(n, -1).norm(dim=1) for g in grads], dim=1).norm(dim=1)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(n, *([1] * (g.ndim - 1))))
    return norms


def _load(module: nn.Module, tensors: dict[str, torch.Tensor], i: int) -> None:
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name in tensors:
                t.copy_(tensors[name][i])


def _unstack_state(state: dict, i: int, n: int) -> dict:
    """Seed ``i``'s optimizer state from the stacked optimizer's (scalars such as Adam's step are shared)."""
    def part(v: Any) -> Any:
        if not isinstance(v, torch.Tensor):
            return v
        return (v[i] if v.ndim and v.shape[0] == n else v).clone()

    return {"state": {k: {name: part(v) for name, v in st.items()} for k, st in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"])}


def train_batched(run: _Run, seeds: list[int], *, progress: bool,
                  desc: str) -> tuple[list[dict], dict[int, nn.Module], dict[int, dict]]:
    """Train ``seeds`` as one stacked model; return the log rows (seed by seed), the modules and
    each seed's optimizer state."""
    if run.starts:
        raise BatchingError("continuing a run (a Fit, or start=) trains its seeds one by one")
    models = [build(run, s) for s in seeds]
    n = len(seeds)
    shapes = {tuple((k, v.shape) for k, v in m.state_dict().items()) for m in models}
    if len(shapes) != 1:
        raise BatchingError("the seeds' models differ in their parameters' names or shapes")
    opt = run.make_optimizer(models[0])
    if not isinstance(opt, ELEMENTWISE):
        raise BatchingError(f"{type(opt).__name__} does not update elementwise; use Adam, AdamW, SGD, RMSprop "
                            f"or Adagrad, or batched=False")
    params, buffers = torch.func.stack_module_state(models)
    name_of = {id(p): name for name, p in models[0].named_parameters()}
    for group in opt.param_groups:  # the same groups and settings, over the stacked tensors
        group["params"] = [params[name_of[id(p)]] for p in group["params"]]
    sched = lr_scheduler(run, opt)
    holder = _LossModule(copy.deepcopy(models[0]).to("meta"), run.loss)
    torch.manual_seed(derived_seed(seeds[0], 2))
    generators = [torch.Generator().manual_seed(derived_seed(s, 1)) for s in seeds]
    samplers = [run.sampler() for _ in seeds]

    def one(p: dict, b: dict, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        state = {f"model.{k}": v for k, v in {**p, **b}.items()}
        loss, metrics = split_loss(torch.func.functional_call(holder, state, (batch,)))
        return loss.reshape(()), {k: torch.as_tensor(v) for k, v in metrics.items()}

    step_fn = torch.func.vmap(one, randomness="different")
    rows: list[list[dict]] = [[] for _ in seeds]
    alive = [True] * n
    frozen: dict[int, dict[str, torch.Tensor]] = {}
    trainable = [p for p in params.values() if p.requires_grad]
    with tqdm(total=run.steps, desc=f"{desc} ({n} seeds batched)", disable=not progress, leave=False) as bar:
        for step in range(1, run.steps + 1):
            batch = _stack([to_device(samplers[i](step, generators[i]), run.device) for i in range(n)])
            try:
                losses, metrics = step_fn(params, buffers, batch)
            except Exception as err:
                if step > 1:
                    raise
                raise BatchingError(f"vmap could not run the loss: {type(err).__name__}: {err}") from err
            values = losses.detach().cpu().tolist()
            metric_values = {k: v.detach().cpu().reshape(n, -1)[:, 0].tolist() for k, v in metrics.items()}
            lr = opt.param_groups[0]["lr"]
            step_rows: dict[int, dict] = {}
            for i in range(n):
                if not alive[i]:
                    continue
                row = {"seed": seeds[i], "step": step, "loss": values[i], "lr": lr,
                       **_floats({k: v[i] for k, v in metric_values.items()})}
                if not math.isfinite(values[i]):
                    row["diverged"] = True
                    rows[i].append(row)
                    alive[i] = False
                    frozen[i] = {k: v[i].detach().clone() for k, v in {**params, **buffers}.items()}
                    continue
                step_rows[i] = row
            bar.update(1)
            if not step_rows:
                break
            opt.zero_grad(set_to_none=True)
            losses[[i for i in range(n) if alive[i]]].sum().backward()
            if run.grad_clip is not None:
                norms = _clip([p.grad for p in trainable if p.grad is not None], run.grad_clip, n).tolist()
                for i, row in step_rows.items():
                    row["grad_norm"] = norms[i]
            opt.step()
            if sched is not None:
                sched.step()
            if run.eval_due(step):
                for i, row in step_rows.items():
                    _load(models[i], {**params, **buffers}, i)
                    add_eval(row, evaluate(run, models[i]))
            for i, row in step_rows.items():
                rows[i].append(row)
                for cb in run.callbacks:
                    cb(step, row)
            if step % 10 == 0 or step == run.steps:
                bar.set_postfix(loss=f"{sum(values) / n:.4f}", refresh=False)
    for i in range(n):
        if i in frozen:
            _load(models[i], {k: v.unsqueeze(0) for k, v in frozen[i].items()}, 0)
        else:
            _load(models[i], {**params, **buffers}, i)
    state = opt.state_dict()
    states = {s: _unstack_state(state, i, n) for i, s in enumerate(seeds)}
    return [r for seed_rows in rows for r in seed_rows], dict(zip(seeds, models)), states
