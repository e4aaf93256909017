"""Every model and batch the recsys and merging notebooks train lands on the device nbsupport picks.

The picked device is made observable through ``$NBSUPPORT_DEVICE``, set to ``meta`` (tensors
with shapes and no data, on any machine): code that forgets a ``.to(device)`` either trains on
the CPU (the spies below see it) or mixes CPU and meta tensors (an error). No number is
computed, so nothing needs a GPU.

- training: a spy replaces the one loop every :func:`nbsupport.train.fit` goes through; it
  builds the seed's module, draws one batch, records where the module's parameters and buffers
  and the batch's tensors are, runs the loss and its backward pass there, and stops the run;
- evaluation (merging's logits, embeddings, Fishers): a global forward pre-hook records where
  the first module called and its inputs are, and stops the call.
"""

from __future__ import annotations

import pytest
import torch

import nbsupport
from nbsupport.train import loop

META = torch.device("meta")


class Stop(Exception):
    """Raised by the spies once they have seen where the work runs."""


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, tuple | list):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


@pytest.fixture
def on_meta(monkeypatch):
    """``$NBSUPPORT_DEVICE=meta`` and a spy in place of the training loop; yields the records,
    one per training run: the run's device and the devices of its module and first batch."""
    runs: list[dict] = []

    def spy(run, seed, bar=None):
        model = loop.build(run, seed)
        batch = loop.to_device(run.sampler()(1, torch.Generator().manual_seed(seed)), run.device)
        runs.append({"run": run.device, "model": {t.device for t in [*model.parameters(), *model.buffers()]},
                     "batch": {t.device for t in _tensors(batch)}})
        loss, _ = loop.split_loss(run.loss(model, batch))  # CPU and meta tensors mixed would raise here
        loss.backward()
        raise Stop

    monkeypatch.setattr(loop, "train_one", spy)
    unique = torch.Tensor.unique  # no meta kernel (its size depends on the data): the ids themselves stand in
    monkeypatch.setattr(torch.Tensor, "unique", lambda self, *a, **k: self if self.is_meta else unique(self, *a, **k))
    monkeypatch.setenv("NBSUPPORT_DEVICE", "meta")
    assert nbsupport.device() == META
    return runs


def assert_on_meta(runs: list[dict], n: int = 1) -> None:
    assert len(runs) == n
    for r in runs:
        assert r["run"] == META and r["model"] == {META} and r["batch"] == {META}, r


# ---------------------------------------------------------------- recsys

def _recsys_models(data):
    from nbsupport.recsys import models

    cf = models.Hybrid.mf(data, dim=8)
    return {  # every trainable model the recsys notebooks train
        "MF": lambda: models.Hybrid.mf(data, dim=8),
        "hybrid": lambda: models.Hybrid(data, dim=8),
        "contrastive": lambda: models.ContrastiveColdStart(data, dim=8, lam=0.5, nce_sample=4),
        "no contrastive loss": lambda: models.ContrastiveColdStart(data, dim=8, lam=0.0),
        "no gating": lambda: models.ContrastiveColdStart(data, dim=8, lam=0.5, gated=False, nce_sample=4),
        "aligned": lambda: models.ALLMRecAligner(cf, data.item_features["title"], latent=8, hidden=8),
    }


@pytest.mark.parametrize("name", ["MF", "hybrid", "contrastive", "no contrastive loss", "no gating", "aligned"])
def test_recsys_trains_on_the_picked_device(on_meta, name):
    from nbsupport import recsys
    from nbsupport.recsys import models

    data = recsys.synthetic(n_users=20, n_items=30, per_user=6)
    s = recsys.split(data, "item-cold", share=0.2, seed=0)
    model = _recsys_models(data)[name]()
    with pytest.raises(Stop):
        models.fit(model, s, steps=3, batch=8, seed=0, progress=False)
    assert_on_meta(on_meta)
    assert {t.device for t in [*model.parameters(), *model.buffers()]} == {META}  # it stays there


def test_recsys_evaluates_a_model_where_it_lives():
    """A model trained on the device is ranked there; the ids come back on the CPU (here: CPU)."""
    from nbsupport import recsys
    from nbsupport.recsys import models

    data = recsys.synthetic(n_users=20, n_items=30, per_user=6)
    s = recsys.split(data, "item-cold", share=0.2, seed=0)
    torch.manual_seed(0)
    model = models.Hybrid(data, dim=8)
    models.fit(model, s, steps=3, batch=8, seed=0, progress=False, device="cpu")
    for group in ("cold", "warm"):
        assert len(recsys.evaluate_users(model, s, group)) > 0


# ---------------------------------------------------------------- merging

@pytest.fixture(scope="module")
def suite():
    from nbsupport.merging.experiments import Suite

    return Suite("cnn", ["parity", "high"], 32, 16, 16, pretrain_steps=2)  # built on this machine's device


def test_merging_pretraining_on_the_picked_device(on_meta):
    from nbsupport.merging.experiments import Suite

    with pytest.raises(Stop):
        Suite("cnn", ["parity"], 32, 16, 16, pretrain_steps=2)
    assert_on_meta(on_meta)


@pytest.mark.parametrize("method", ["finetune", "multitask", "probe", "learn_mask", "notebook_fit"])
def test_merging_trains_on_the_picked_device(on_meta, suite, method):
    from nbsupport.merging.localize import learn_mask
    from nbsupport.train import fit

    base = suite.base()
    assert suite.device == META  # picked at the call, not when the suite was built
    if method == "probe":  # the embeddings come first: let them run on the CPU, then the probe trains
        suite.embed = lambda body, task, split, batch=256: torch.zeros(len(getattr(suite.tasks[task], split).y), 4)
    calls = {
        "finetune": lambda: suite.finetune(0, base, steps=2, seed=0),
        "multitask": lambda: suite.multitask([0, 1], base, steps=2, seed=0),
        "probe": lambda: suite.probe(base, 0, steps=2),
        "learn_mask": lambda: learn_mask(suite.model(base, None, 0), base, {k: v + 1 for k, v in base.items()},
                                         (suite.tasks[0].train.x.float(), suite.tasks[0].train.y), size=10,
                                         prefix="body.", steps=2, batch_size=8),
        # merging/04 fine-tunes with nbsupport.train.fit itself, on its default device
        "notebook_fit": lambda: fit(suite.model(base, None, 0), (suite.tasks[0].train.x.float(), suite.tasks[0].train.y),
                                    steps=2, batch_size=8, seeds=[0], workers=1, progress=False),
    }
    try:
        with pytest.raises(Stop):
            calls[method]()
    finally:
        suite.__dict__.pop("embed", None)
    assert_on_meta(on_meta)


@pytest.mark.parametrize("method", ["logits", "embed", "fisher"])
def test_merging_evaluates_on_the_picked_device(on_meta, suite, method):
    from nbsupport.merging.experiments import Expert

    seen = []

    def hook(module, args):
        seen.append({t.device for t in [*module.parameters(), *_tensors(args)]})
        raise Stop

    base = suite.base()
    head = suite.new_head(0, 0)
    calls = {"logits": lambda: suite.logits(base, head, 0, "val"), "embed": lambda: suite.embed(base, 0, "val"),
             "fisher": lambda: suite.fisher(Expert(0, base, head), n_examples=8, batch=4)}
    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        with pytest.raises(Stop):
            calls[method]()
    finally:
        handle.remove()
    assert seen == [{META}]


# ---------------------------------------------------------------- workers

def test_tasks_run_here_when_the_device_is_not_the_cpu(monkeypatch):
    """A forked worker cannot use CUDA once the parent asked for it: off the CPU, run_tasks runs here."""
    import os

    from nbsupport.train import run_tasks

    monkeypatch.setenv("NBSUPPORT_DEVICE", "meta")
    assert set(run_tasks(lambda t: os.getpid(), [0, 1, 2], workers=2)) == {os.getpid()}
