"""Interval bound propagation (nbsupport.warmup.ibp): sound bounds, exact where they should be."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nbsupport.models.ibp_mlp import IBPNet
from nbsupport.warmup.ibp import certified_loss, ibp_init_, interval_widths, margin_lower_bounds


def net(hidden=(12, 8), bn=True, seed=0):
    torch.manual_seed(seed)
    m = IBPNet(6, list(hidden), 4, batch_norm=bn)
    if bn:  # non-trivial running statistics
        m.train()
        with torch.no_grad():
            for _ in range(5):
                m(torch.rand(32, 6))
    return m.eval()


@pytest.mark.parametrize("bn", [False, True])
def test_bounds_are_sound(bn):
    m = net(bn=bn)
    g = torch.Generator().manual_seed(1)
    x, y, eps = torch.rand(16, 6, generator=g), torch.randint(0, 4, (16,), generator=g), 0.05
    _, lower = margin_lower_bounds(m, x, y, eps)
    with torch.no_grad():
        for _ in range(200):
            xp = (x + eps * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(0, 1)
            z = m(xp)
            margins = z.gather(1, y[:, None]) - z
            assert (margins >= lower - 1e-5).all()


def test_no_hidden_layer_bounds_are_exact():
    # for a linear map the interval bound of each margin is the exact minimum over the box
    m = net(hidden=(), bn=False)
    x, y, eps = torch.full((3, 6), 0.5), torch.tensor([0, 1, 2]), 0.1
    lower = margin_lower_bounds(m, x, y, eps)[1].detach()
    w, b = m.head.weight.detach(), m.head.bias.detach()
    for n in range(3):
        for j in range(4):
            a = w[y[n]] - w[j]
            exact = float(a @ x[n] - eps * a.abs().sum() + b[y[n]] - b[j])
            assert float(lower[n, j]) == pytest.approx(exact, abs=1e-5)


def test_zero_eps_gives_clean_margins_and_cross_entropy():
    m = net()
    x, y = torch.rand(8, 6), torch.randint(0, 4, (8,))
    logits, lower = margin_lower_bounds(m, x, y, 0.0)
    torch.testing.assert_close(lower, logits.gather(1, y[:, None]) - logits, atol=1e-5, rtol=1e-5)
    loss, stats = certified_loss(m, x, y, 0.0)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y), atol=1e-5, rtol=1e-5)
    assert stats["verified_acc"] == pytest.approx(stats["clean_acc"])


def test_training_mode_batch_norm_uses_batch_statistics():
    m = net().train()
    x, y = torch.rand(32, 6), torch.randint(0, 4, (32,))
    logits, lower = margin_lower_bounds(m, x, y, 0.0)
    torch.testing.assert_close(lower, logits.gather(1, y[:, None]) - logits, atol=1e-5, rtol=1e-5)
    _, wider = margin_lower_bounds(m, x, y, 0.1)
    assert (wider <= lower + 1e-5).all()


def test_ibp_init_scale():
    m = ibp_init_(IBPNet(400, [300], 10))
    w = m.body[0].weight.detach()
    assert float(w.std()) == pytest.approx(math.sqrt(2 * math.pi) / 400, rel=0.05)
    assert float(m.body[0].bias.detach().abs().max()) == 0.0


def test_interval_widths_match_a_hand_propagation():
    # one hidden layer without BN: width after ReLU of a neuron is relu(c + r) - relu(c - r),
    # with c = Wx + b and r = eps·|W|·1 (inputs far from the [0, 1] edges, no clamping)
    m = net(hidden=(5,), bn=False)
    x, eps = torch.full((4, 6), 0.5), 0.05
    with torch.no_grad():
        w, b = m.body[0].weight, m.body[0].bias
        c, r = x @ w.t() + b, eps * w.abs().sum(1)
        expected = float((F.relu(c + r) - F.relu(c - r)).mean())
    widths = interval_widths(m, x, eps)
    assert len(widths) == 1 and widths[0] == pytest.approx(expected, rel=1e-5)


def test_interval_widths_one_per_hidden_layer_and_zero_at_zero_eps():
    m = net(hidden=(12, 8, 7))
    x = torch.rand(16, 6)
    assert len(interval_widths(m, x, 0.1)) == 3
    assert interval_widths(m, x, 0.0) == pytest.approx([0.0, 0.0, 0.0], abs=1e-7)
