"""Imbalanced-domain training on the shared loop, the gradient variance, and the TempNet helpers."""

import math

import numpy as np
import pytest
import torch

from nbsupport import calibration as cal
from nbsupport.models.char_lm import CharMLP


def _domains():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 5, (n,), generator=g) for n in (2000, 200, 50)], [2000, 200, 50]


def test_weighted_batches_weights_and_shapes():
    domains, sizes = _domains()
    it = cal.weighted_batches(domains, sizes, lambda s: 1.0, context=4, batch=64,
                              generator=torch.Generator().manual_seed(1), reweight=True)
    x, y, w = next(it)
    assert x.shape == (64, 4) and y.shape == (64,) and w.shape == (64,)
    expected = cal.upweights(sizes, math.inf)
    assert set(np.round(w.numpy(), 4)) <= set(np.round(expected.astype(np.float32), 4))
    x, y, w = next(cal.weighted_batches(domains, sizes, lambda s: math.inf, context=4, batch=8,
                                        generator=torch.Generator(), reweight=False))
    assert torch.equal(w, torch.ones(8))


def test_train_domains_is_seeded_and_logs_eval():
    domains, sizes = _domains()

    def run(seed):
        torch.manual_seed(0)
        model = CharMLP(5, context=4, emb=4, hidden=8)
        log = cal.train_domains(model, domains, sizes, lambda s: math.inf, reweight=False, steps=6, context=4,
                                seed=seed, batch=16, eval_fn=lambda m: {"v": 1.0}, eval_every=3)
        return log
    a, b = run(0), run(0)
    assert list(a.loss) == list(b.loss) and a.v.notna().sum() == 2
    assert list(run(1).loss) != list(a.loss)


def test_gradient_variance_matches_brute_force():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    data = [torch.randn(8, 3) for _ in range(5)]

    def loss_fn(m, x):
        return (m(x) ** 2).mean()

    v = cal.gradient_variance(model, loss_fn, iter(data), 5)
    grads = []
    for x in data:
        model.zero_grad()
        loss_fn(model, x).backward()
        grads.append(torch.cat([model.weight.grad.flatten(), model.bias.grad]).double())
    G = torch.stack(grads)
    assert abs(v - float(G.var(0, unbiased=True).sum())) < 1e-10
    with pytest.raises(ValueError, match="n_batches"):
        cal.gradient_variance(model, loss_fn, iter(data), 1)


def test_tempered_entropy_and_fit_tempnet_equalize():
    z = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0]], dtype=torch.float64)
    h = cal.tempered_entropy(z, 1.0)
    p = torch.softmax(z, 1)
    assert torch.allclose(h, -(p * p.log()).sum(1))
    assert torch.allclose(cal.tempered_entropy(z, torch.tensor([2.0, 0.5])),
                          torch.stack([cal.tempered_entropy(z[:1], 2.0)[0], cal.tempered_entropy(z[1:], 0.5)[0]]))
    # the DRO optimum in tau sets the tempered entropy to log V - rho, so TempNet moves both towards it
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2000, 8, generator=g) * torch.rand(2000, 1, generator=g) * 6
    y = torch.randint(0, 8, (2000,), generator=g)
    torch.manual_seed(0)
    net = cal.TempNet(8, hidden=16, tau_min=0.05, tau_max=10.0)
    log = cal.fit_tempnet(net, logits, y, rho=0.5, steps=150, batch=512, lr=1e-2)
    assert len(log) == 150
    target = math.log(8) - 0.5
    with torch.no_grad():
        tau = net(logits)
    before = (cal.tempered_entropy(logits, 1.0) - target).abs().mean()
    after = (cal.tempered_entropy(logits, tau) - target).abs().mean()
    assert after < 0.5 * before


def test_weighted_sampler_reads_tau_at_the_update_before_the_step():
    domains, sizes = _domains()
    seen = []
    sample = cal.weighted_sampler(domains, sizes, lambda s: seen.append(s) or 1.0, context=4, batch=32, reweight=True)
    x, y, w = sample(1, torch.Generator().manual_seed(0))
    sample(7, torch.Generator())
    assert seen == [0, 6] and x.shape == (32, 4) and y.shape == (32,) and w.shape == (32,)
    it = cal.weighted_batches(domains, sizes, lambda s: 1.0, context=4, batch=32,
                              generator=torch.Generator().manual_seed(0), reweight=True)
    assert all(torch.equal(a, b) for a, b in zip(next(it), (x, y, w)))
    with pytest.raises(ValueError, match="more than context"):
        cal.weighted_sampler([torch.arange(3)], [3], lambda s: 1.0, context=4, batch=2, reweight=False)
