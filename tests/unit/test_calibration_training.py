"""Mixup, TempNet's DRO loss, and temperature sampling / upweighting / cooldown."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from nbsupport import calibration as cal


def test_mixup_mixes_inputs_and_targets_with_one_lambda():
    x = torch.randn(8, 3)
    y = torch.arange(8) % 4
    xm, ym, lam = cal.mixup(x, y, 4, alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert 0 <= lam <= 1 and xm.shape == x.shape and ym.shape == (8, 4)
    assert torch.allclose(ym.sum(1), torch.ones(8))
    g = torch.Generator().manual_seed(0)  # the same draws: one uniform for lambda, then the partners
    u = float(torch.rand((), generator=g, dtype=torch.float64))
    assert lam == pytest.approx(float(stats.beta(0.4, 0.4).ppf(u)), abs=1e-9)
    p = torch.randperm(8, generator=g)
    assert torch.allclose(xm, lam * x + (1 - lam) * x[p])
    onehot = torch.nn.functional.one_hot(y, 4).float()
    assert torch.allclose(ym, lam * onehot + (1 - lam) * onehot[p])
    # lambda follows Beta(alpha, alpha): its mean is 1/2 and its variance 1 / (4 (2 alpha + 1))
    g = torch.Generator().manual_seed(1)
    lams = np.array([cal.mixup(x, y, 4, alpha=0.4, generator=g)[2] for _ in range(4000)])
    assert abs(lams.mean() - 0.5) < 0.02 and abs(lams.var() - 1 / (4 * 1.8)) < 0.01
    x0, y0, l0 = cal.mixup(x, y, 4, alpha=0.0)
    assert l0 == 1.0 and torch.equal(x0, x) and torch.equal(y0, onehot)
    with pytest.raises(ValueError):
        cal.mixup(x, y, 4, alpha=-1.0)


def brute_dro(z, y, tau, rho):
    v = len(z)
    return tau * math.log(sum(math.exp((z[k] - z[y]) / tau) for k in range(v)) / v) + tau * rho


def test_dro_loss_matches_formula_and_its_tau_derivative():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 5, (6,), generator=g)
    tau = torch.rand(6, generator=g, dtype=torch.float64) + 0.3
    rho = 0.7
    want = np.mean([brute_dro(z[i].tolist(), int(y[i]), float(tau[i]), rho) for i in range(6)])
    tau.requires_grad_(True)
    loss = cal.dro_loss(z, y, tau, rho)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-12)
    loss.backward()
    # dL/dtau = rho - KL(softmax((z - z_y)/tau) || uniform), per token (over the mean: / N)
    q = torch.softmax((z - z.gather(1, y[:, None])) / tau.detach()[:, None], 1)
    kl = (q * (q * 5).log()).sum(1)
    assert torch.allclose(tau.grad * 6, rho - kl, atol=1e-10)
    assert float(cal.dro_loss(z, y, torch.tensor(1.0, dtype=torch.float64), 0.0)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(z, y)) - math.log(5), rel=1e-12)


def test_tempnet_output_range_and_shape():
    net = cal.TempNet(11, hidden=8, tau_min=0.2, tau_max=1.5)
    z = torch.randn(3, 4, 11) * 10
    tau = net(z)
    assert tau.shape == (3, 4) and (tau >= 0.2).all() and (tau <= 1.5).all()
    # depends on the logits only through their sorted log-probabilities
    perm = torch.randperm(11)
    assert torch.allclose(net(z[..., perm]), tau) and torch.allclose(net(z + 3.0), tau, atol=1e-6)
    with pytest.raises(ValueError):
        cal.TempNet(11, tau_min=2.0, tau_max=1.0)


def test_temperature_probs_and_upweights():
    sizes = [1000, 100, 10]
    assert np.allclose(cal.temperature_probs(sizes, 1.0), np.array(sizes) / 1110)
    assert np.allclose(cal.temperature_probs(sizes, 1e9), 1 / 3)
    p2 = cal.temperature_probs(sizes, 2.0)
    assert np.allclose(p2, np.sqrt(sizes) / np.sqrt(sizes).sum())
    w = cal.upweights(sizes, 2.0)
    q = np.array(sizes) / 1110
    assert np.allclose(q * w, p2) and q @ w == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cal.temperature_probs([10, 0], 1.0)
    with pytest.raises(ValueError):
        cal.temperature_probs(sizes, 0.0)


def test_cooldown_schedule():
    tau = cal.cooldown(10.0, 1.0, steps=100, start=0.2, end=0.6)
    assert tau(0) == 10.0 and tau(20) == 10.0 and tau(40) == pytest.approx(5.5)
    assert tau(60) == pytest.approx(1.0) and tau(100) == 1.0
    with pytest.raises(ValueError):
        cal.cooldown(10.0, 1.0, 100, start=0.5, end=0.4)


def test_domain_batches_follow_probabilities():
    domains = [torch.arange(0, 1000), torch.arange(10_000, 10_050)]
    g = torch.Generator().manual_seed(0)
    it = cal.domain_batches(domains, np.array([0.25, 0.75]), block=8, batch=400, generator=g)
    x, y, d = next(it)
    assert x.shape == (400, 8) and y.shape == (400, 8)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert 0.65 < float((d == 1).double().mean()) < 0.85
    assert ((x >= 10_000) == (d == 1)[:, None]).all()  # each window comes from its own domain
    probs = lambda step: np.array([1.0, 0.0]) if step == 0 else np.array([0.0, 1.0])  # noqa: E731
    it = cal.domain_batches(domains, probs, block=4, batch=16, generator=g)
    assert (next(it)[2] == 0).all() and (next(it)[2] == 1).all()
    with pytest.raises(ValueError, match="block"):
        next(cal.domain_batches([torch.arange(5)], np.array([1.0]), block=8, batch=2, generator=g))


def test_mixture_interpolates_sampling_and_upweighting():
    sizes = [1000, 100, 10]
    p, w = cal.mixture(sizes, 1.0, math.inf)
    assert np.allclose(p, np.array(sizes) / 1110) and np.allclose(p * w, 1 / 3)
    p, w = cal.mixture(sizes, math.inf, math.inf)
    assert np.allclose(p, 1 / 3) and np.allclose(w, 1.0)
    p, w = cal.mixture(sizes, 3.0, math.inf)
    assert np.allclose(p * w, 1 / 3)
    assert np.allclose(cal.mixture(sizes, 1.0, 2.0)[1], cal.upweights(sizes, 2.0))
