"""nbsupport.train.fit: the log, seeds, the three ways to spread seeds, schedules, clipping, eval,
threads and workers, and clear errors. Tiny models and few steps (the module runs in seconds)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from torch import nn

from nbsupport import schedules, train
from nbsupport.train import parallel
from nbsupport.train.batched import BatchingError

X = torch.randn(96, 6, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] + X[:, 1] > 0).long()


def mlp(seed: int) -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))


def accuracy(model: nn.Module) -> dict[str, float]:
    return {"acc": float((model(X).argmax(1) == Y).float().mean())}


def quick(data=(X, Y), **kw):
    args = dict(steps=6, batch_size=16, lr=1e-2, device="cpu", progress=False, workers=1)
    return train.fit(mlp, data, **{**args, **kw})


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_log_has_one_row_per_seed_and_step():
    res = quick(seeds=[3, 5])
    assert list(res.log.columns[:4]) == ["seed", "step", "loss", "lr"]
    assert len(res.log) == 12 and res.log.seed.tolist() == [3] * 6 + [5] * 6
    assert res.log.step.tolist() == list(range(1, 7)) * 2
    assert res.seeds == [3, 5] and res.mode == "sequential" and np.isfinite(res.log.loss).all()
    assert res.final.index.tolist() == [3, 5] and (res.final.step == 6).all()


def test_same_seed_same_run_and_different_seeds_differ():
    a, b = quick(seeds=[0, 1]), quick(seeds=[0])
    assert torch.equal(flat(a.models[0]), flat(b.models[0]))
    assert a.log[a.log.seed == 0].loss.tolist() == b.log.loss.tolist()
    assert not torch.allclose(flat(a.models[0]), flat(a.models[1]))


def test_init_derives_from_the_seed_and_data_order_from_its_own_stream():
    res = quick(seeds=[4], steps=1, lr=0.0)  # lr 0: the returned weights are the initial ones
    torch.manual_seed(4)
    assert torch.equal(flat(res.models[4]), flat(mlp(4)))
    assert train.derived_seed(4, 1) != train.derived_seed(4, 2) != 4


def test_a_module_instance_is_copied_per_seed_and_left_unchanged():
    torch.manual_seed(0)
    net = mlp(0)
    before = flat(net).clone()
    res = train.fit(net, (X, Y), steps=3, batch_size=16, seeds=[0, 1], device="cpu", progress=False, workers=1)
    assert torch.equal(flat(net), before)
    assert res.models[0] is not net and not torch.equal(flat(res.models[0]), flat(res.models[1]))


def test_fit_in_place_trains_the_module_itself_as_fit_trains_its_copy():
    torch.manual_seed(2)
    net = mlp(2)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    log = train.fit_in_place(net, (X, Y), seed=2, steps=6, batch_size=16, lr=1e-2, progress=False)
    assert log.seed.tolist() == [2] * 6 and log.step.tolist() == list(range(1, 7))
    twin = mlp(2)
    twin.load_state_dict(start)
    ref = train.fit(twin, (X, Y), seeds=[2], steps=6, batch_size=16, lr=1e-2, device="cpu", progress=False,
                    workers=1)
    assert torch.equal(flat(net), flat(ref.models[2])) and log.loss.tolist() == ref.log.loss.tolist()
    with pytest.raises(ValueError, match="pass seed="):
        train.fit_in_place(net, (X, Y), seeds=[0, 1], steps=1, batch_size=16)
    with pytest.raises(TypeError, match="nn.Module"):
        train.fit_in_place(mlp, (X, Y), steps=1, batch_size=16)


def test_parallel_batched_and_sequential_give_the_same_parameters():
    kw = dict(seeds=[0, 1, 2], steps=8, grad_clip=0.5, schedule=schedules.cosine(2, 8), eval_fn=accuracy,
              eval_every=4)
    seq = quick(**kw)
    par = quick(**{**kw, "workers": 2})
    bat = quick(**{**kw, "batched": True})
    assert (seq.mode, par.mode, bat.mode) == ("sequential", "parallel", "batched")
    for s in kw["seeds"]:
        torch.testing.assert_close(flat(par.models[s]), flat(seq.models[s]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(flat(bat.models[s]), flat(seq.models[s]), rtol=1e-5, atol=1e-6)
    for other in (par, bat):
        assert list(other.log.columns) == list(seq.log.columns)
        np.testing.assert_allclose(other.log[["loss", "lr", "grad_norm"]], seq.log[["loss", "lr", "grad_norm"]],
                                   rtol=1e-5)
        np.testing.assert_allclose(other.evals.acc, seq.evals.acc)


def test_schedule_sets_the_lr_column():
    sched = schedules.linear(3, 10)
    res = quick(steps=10, lr=0.05, schedule=sched)
    np.testing.assert_allclose(res.log.lr, 0.05 * sched(np.arange(10)), rtol=1e-12)


@pytest.mark.parametrize("batched", [False, True])
def test_grad_clip_bounds_each_seeds_update(batched):
    # SGD, lr 1: each seed's first update is its gradient clipped to norm 1e-3
    res = quick(seeds=[0, 1], steps=1, optimizer="sgd", lr=1.0, grad_clip=1e-3, batched=batched)
    for s in (0, 1):
        torch.manual_seed(s)
        step = (flat(res.models[s]) - flat(mlp(s))).norm()
        assert res.log.grad_norm[res.log.seed == s].item() > 1e-3
        assert step.item() == pytest.approx(1e-3, rel=1e-4)


def test_eval_every_adds_eval_rows():
    res = quick(steps=10, eval_fn=accuracy, eval_every=4)
    assert res.evals.step.tolist() == [4, 8, 10] and res.evals.columns.tolist() == ["seed", "step", "acc"]
    assert res.log.acc.notna().sum() == 3


def test_eval_at_adds_evaluations_at_those_steps():
    res = quick(steps=10, eval_fn=accuracy, eval_every=4, eval_at=[1, 2, 4])
    assert res.evals.step.tolist() == [1, 2, 4, 8, 10]
    with pytest.raises(ValueError, match="eval_at"):
        quick(eval_at=[3])


def test_start_counts_steps_schedule_and_data_stream_on_with_a_fresh_optimizer():
    seeds_seen = []

    def sampler(step, generator):
        seeds_seen.append((step, generator.initial_seed()))
        return by_step(step, generator)

    sched = schedules.cosine(2, 10)
    torch.manual_seed(0)
    net = mlp(0)
    res = train.fit(net, sampler, steps=4, start=6, lr=0.05, schedule=sched, seeds=[0], device="cpu",
                    progress=False, workers=1, eval_fn=accuracy, eval_at=[7])
    assert res.log.step.tolist() == [7, 8, 9, 10] and res.evals.step.tolist() == [7, 10]
    np.testing.assert_allclose(res.log.lr, 0.05 * sched(np.arange(6, 10)), rtol=1e-12)
    assert seeds_seen == [(t, train.derived_seed(0, 1, 6)) for t in (7, 8, 9, 10)]
    # a fresh optimizer: the same as a new run whose sampler and schedule are shifted by hand
    ref = train.fit(net, lambda t, g: by_step(t + 6, g), steps=4, lr=0.05, schedule=lambda t: sched(t + 6),
                    seeds=[0], device="cpu", progress=False, workers=1)
    torch.testing.assert_close(flat(res.models[0]), flat(ref.models[0]))
    with pytest.raises(ValueError, match="start"):
        train.fit(res, by_step, steps=1, start=3, device="cpu", progress=False)
    with pytest.raises(ValueError, match="start must be"):
        quick(start=-1)


def test_sampler_data_gets_the_run_generator_and_metrics_are_logged():
    seen = {}

    def sampler(step, generator):
        idx = torch.randint(len(X), (8,), generator=generator)
        seen.setdefault(step, []).append(idx)
        return X[idx], Y[idx]

    def loss(model, batch):
        value = nn.functional.cross_entropy(model(batch[0]), batch[1])
        return value, {"twice": 2 * value.detach()}

    res = train.fit(mlp, sampler, steps=3, loss=loss, seeds=[0, 1], device="cpu", progress=False, workers=1)
    assert not torch.equal(seen[1][0], seen[1][1])  # each seed draws its own batches
    np.testing.assert_allclose(res.log.twice, 2 * res.log.loss, rtol=1e-6)


@pytest.mark.parametrize("batched", [False, True])
def test_a_non_finite_loss_stops_that_seed(batched):
    def loss(model, batch):  # seed 1 (its weights start larger in magnitude) diverges at once
        value = nn.functional.cross_entropy(model(batch[0]), batch[1])
        first = next(model.parameters())
        return value + torch.where(first.abs().sum() > limit, torch.nan, 0.0)

    torch.manual_seed(0)
    norm0 = float(next(mlp(0).parameters()).detach().abs().sum())
    torch.manual_seed(1)
    norm1 = float(next(mlp(1).parameters()).detach().abs().sum())
    limit = (norm0 + norm1) / 2
    bad = 0 if norm0 > norm1 else 1
    res = quick(seeds=[0, 1], steps=4, lr=0.0, loss=loss, batched=batched)
    rows = res.log[res.log.seed == bad]
    assert len(rows) == 1 and bool(rows.diverged.iloc[0])
    assert len(res.log[res.log.seed == 1 - bad]) == 4
    torch.manual_seed(bad)
    assert torch.equal(flat(res.models[bad]), flat(mlp(bad)))


@pytest.mark.timeout(120)
def test_workers_after_parent_threads_with_a_loss_that_cannot_be_imported():
    # some OpenMP runtimes hang a forked child after the parent used its thread pool: the
    # parent runs a matmul on 2 threads first; the loss is defined at run time (fork, no pickling)
    namespace: dict = {}
    exec("import torch\ndef made_up_loss(model, batch):\n    return torch.nn.functional.cross_entropy("
         "model(batch[0]), batch[1])", namespace)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        torch.ones(256, 256) @ torch.ones(256, 256)
        res = quick(seeds=[0, 1], loss=namespace["made_up_loss"], workers=2)
        threads = train.run_seeds(lambda s: torch.get_num_threads(), [0, 1], workers=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert res.mode == "parallel" and len(res.log) == 12 and threads == [1, 1]
    torch.testing.assert_close(flat(res.models[1]), flat(quick(seeds=[1], loss=namespace["made_up_loss"]).models[1]))


def test_run_tasks_splits_work_over_workers_and_keeps_order():
    tasks = [(seed, arm) for seed in (0, 1, 2) for arm in ("a", "bb")]
    seen = []

    def work(task):
        seed, arm = task
        return seed * 10 + len(arm), torch.get_num_threads(), os.getpid()

    out = train.run_tasks(work, tasks, workers=2, on_result=lambda t, r: seen.append(t))
    assert [v for v, _, _ in out] == [1, 2, 11, 12, 21, 22]  # the order of tasks, whatever finished first
    assert {n for _, n, _ in out} == {1} and os.getpid() not in {p for _, _, p in out}
    assert sorted(seen) == sorted(tasks)
    assert [v for v, _, _ in train.run_tasks(work, tasks, workers=1)] == [1, 2, 11, 12, 21, 22]
    with pytest.raises(ValueError, match="tasks is empty"):
        train.run_tasks(work, [])
    with pytest.raises(ValueError, match="seeds must be a non-empty list"):
        train.run_seeds(work, [(0, "a")])


def test_run_tasks_starts_the_costliest_tasks_first(tmp_path):
    log = tmp_path / "started"

    def work(task):
        with open(log, "a") as f:
            f.write(f"{task}\n")
        time.sleep(0.3)
        return task * 2

    assert train.run_tasks(work, [1, 5, 3, 4], workers=2, cost=lambda t: t) == [2, 10, 6, 8]
    started = [int(line) for line in log.read_text().split()]
    assert set(started[:2]) == {5, 4} and set(started[2:]) == {3, 1}


def test_run_tasks_raises_a_workers_error_here():
    def work(task):
        if task == 2:
            raise RuntimeError("task 2 failed")
        return task

    with pytest.raises(RuntimeError, match="task 2 failed"):
        train.run_tasks(work, [0, 1, 2, 3], workers=2)


def test_threads_default_to_one_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    seen = []

    def cb(step, row):
        seen.append(torch.get_num_threads())

    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(parallel, "_DEFAULT_THREADS", 2)  # 2 is torch's default: one thread in fit
        quick(steps=1, callbacks=[cb])
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(parallel, "_DEFAULT_THREADS", 3)  # the user changed it: kept
        quick(steps=1, callbacks=[cb])
        quick(steps=1, callbacks=[cb], threads=1)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user set the variable: kept
        quick(steps=1, callbacks=[cb])
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2, 1, 2]


def test_workers_follow_nbsupport_workers(monkeypatch):
    monkeypatch.setenv("NBSUPPORT_WORKERS", "3")
    assert train.default_workers(5) == 3 and train.default_workers(2) == 2
    monkeypatch.setenv("NBSUPPORT_WORKERS", "1")
    assert quick(seeds=[0, 1], workers=None).mode == "sequential"
    monkeypatch.setenv("NBSUPPORT_WORKERS", "two")
    with pytest.raises(ValueError, match="NBSUPPORT_WORKERS must be a positive int"):
        train.default_workers(2)


def test_batched_refuses_what_vmap_cannot_run():
    def item_loss(model, batch):
        value = nn.functional.cross_entropy(model(batch[0]), batch[1])
        return value, {"loss_float": value.item()}

    with pytest.raises(BatchingError, match="vmap could not run the loss"):
        quick(seeds=[0, 1], loss=item_loss, batched=True)
    with pytest.raises(BatchingError, match="LBFGS does not update elementwise"):
        quick(seeds=[0, 1], batched=True, optimizer=lambda m: torch.optim.LBFGS(m.parameters()))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(steps=0), ValueError, "steps must be a positive int"),
    (dict(batch_size=None), ValueError, "pass batch_size="),
    (dict(seeds=3), TypeError, r"seeds=range\(3\)"),
    (dict(seeds=[0, 0]), ValueError, "seeds must be distinct"),
    (dict(optimizer="adagrad"), ValueError, "unknown optimizer 'adagrad'"),
    (dict(eval_every=5), ValueError, "eval_every needs an eval_fn"),
    (dict(grad_clip=-1.0), ValueError, "grad_clip must be a positive number"),
    (dict(workers=0), ValueError, "workers must be a positive int"),
    (dict(schedule=0.5), TypeError, "schedule must be"),
    (dict(batched=True, stop_on_nan=False), ValueError, "stop_on_nan=True or batched=False"),
])
def test_bad_arguments_say_what_to_do(kwargs, error, match):
    with pytest.raises(error, match=match):
        quick(**kwargs)


def test_bad_data_and_model_say_what_to_do():
    with pytest.raises(ValueError, match="same, non-zero number of rows"):
        train.fit(mlp, (X, Y[:5]), steps=1, batch_size=4, device="cpu", progress=False)
    with pytest.raises(TypeError, match="data must be tensors"):
        train.fit(mlp, iter([(X, Y)]), steps=1, device="cpu", progress=False)
    with pytest.raises(TypeError, match="model must be an nn.Module or a factory"):
        train.fit("mlp", (X, Y), steps=1, batch_size=4, device="cpu", progress=False)
    with pytest.raises(ValueError, match="must return a scalar tensor"):
        quick(loss=lambda m, b: 1.0)


def by_step(step, generator):  # the same batch for every seed at a step: continuing can be compared
    idx = torch.arange(16) + (step * 16) % (len(X) - 16)
    return X[idx], Y[idx]


@pytest.mark.parametrize("first", [dict(workers=1), dict(workers=2), dict(batched=True)])
def test_continuing_a_fit_equals_training_straight_through(first):
    kw = dict(data=by_step, steps=10, batch_size=None, schedule=schedules.cosine(2, 10), grad_clip=1.0, seeds=[0, 1])
    straight = quick(**kw)
    part = quick(**{**kw, "steps": 6, **first})
    rest = train.fit(part, by_step, steps=4, lr=1e-2, schedule=kw["schedule"], grad_clip=1.0, device="cpu",
                     progress=False, workers=1)
    assert rest.seeds == [0, 1] and rest.log.step.tolist() == [7, 8, 9, 10] * 2
    np.testing.assert_allclose(rest.log.lr, straight.log[straight.log.step > 6].lr)
    again = train.fit(part, by_step, steps=4, lr=1e-2, schedule=kw["schedule"], grad_clip=1.0, device="cpu",
                      progress=False, workers=1)  # a Fit may be continued twice (branches)
    for s in (0, 1):
        torch.testing.assert_close(flat(rest.models[s]), flat(straight.models[s]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(flat(again.models[s]), flat(rest.models[s]))
        assert rest.models[s] is not part.models[s]
    with pytest.raises(ValueError, match=r"cannot continue seeds \[5\]"):
        train.fit(part, by_step, steps=1, seeds=[5], device="cpu", progress=False)


@pytest.mark.gpu
def test_cuda_batches_seeds_by_default_and_matches_one_by_one():
    kw = dict(seeds=[0, 1, 2], steps=8, grad_clip=0.5, device="cuda")
    auto, seq = quick(**kw, workers=None), quick(**kw, batched=False)
    assert (auto.mode, seq.mode) == ("batched", "sequential")
    for s in kw["seeds"]:
        assert next(auto.models[s].parameters()).is_cuda
        torch.testing.assert_close(flat(auto.models[s]), flat(seq.models[s]), rtol=1e-4, atol=1e-5)
