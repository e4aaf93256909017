"""Skill localization (nbsupport.merging.localize) against element-by-element computations."""

import pytest
import torch
from torch import nn

from nbsupport.merging.localize import (
    NormalizedSGD,
    RelaxedGraft,
    graft,
    jaccard,
    learn_mask,
    mask_size,
    movement,
    top_movement_mask,
)


def states(seed=0):
    g = torch.Generator().manual_seed(seed)
    base = {"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g), "n": torch.tensor([2, 3])}
    ft = {"a": base["a"] + torch.randn(3, 4, generator=g), "b": base["b"] + torch.randn(5, generator=g),
          "n": torch.tensor([7, 7])}
    return base, ft


def entries(state):
    """(key, flat index, value) for every float entry."""
    return [(k, i, float(v)) for k, t in state.items() if t.is_floating_point() for i, v in enumerate(t.reshape(-1))]


def test_movement_is_the_difference_of_float_entries():
    base, ft = states()
    tau = movement(base, ft)
    assert set(tau) == {"a", "b"}
    for k, i, v in entries(tau):
        assert v == pytest.approx(float(ft[k].reshape(-1)[i]) - float(base[k].reshape(-1)[i]), abs=1e-6)


def test_graft_takes_finetuned_values_inside_the_mask_only():
    base, ft = states()
    g = torch.Generator().manual_seed(1)
    mask = {k: torch.rand(base[k].shape, generator=g) < 0.4 for k in ("a", "b")}
    out = graft(base, ft, mask)
    for k, i, v in entries(out):
        inside = bool(mask[k].reshape(-1)[i])
        want = float((ft if inside else base)[k].reshape(-1)[i])
        assert v == want
    assert torch.equal(out["n"], base["n"])  # non-float entries stay the base's
    full = graft(base, ft, {k: torch.ones_like(base[k], dtype=torch.bool) for k in ("a", "b")})
    empty = graft(base, ft, {k: torch.zeros_like(base[k], dtype=torch.bool) for k in ("a", "b")})
    assert all(torch.equal(full[k], ft[k]) and torch.equal(empty[k], base[k]) for k in ("a", "b"))


def test_graft_rejects_a_mask_of_other_tensors():
    base, ft = states()
    with pytest.raises(ValueError, match="mask lacks"):
        graft(base, ft, {"a": torch.ones(3, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shapes differ"):
        graft(base, {**ft, "a": torch.zeros(2, 2)}, {})


def test_top_movement_mask_is_the_global_top_s():
    base, ft = states(3)
    tau = entries(movement(base, ft))
    ranked = sorted(tau, key=lambda e: -abs(e[2]))
    for size in (1, 4, 17):
        mask = top_movement_mask(base, ft, size=size)
        chosen = {(k, i) for k, t in mask.items() for i, v in enumerate(t.reshape(-1)) if v}
        assert chosen == {(k, i) for k, i, _ in ranked[:size]}
        assert mask_size(mask) == size
    assert mask_size(top_movement_mask(base, ft, density=0.25)) == round(0.25 * 17)


@pytest.mark.parametrize("kwargs", [{}, {"size": 2, "density": 0.1}, {"size": 0}, {"size": 18}, {"density": 1.5}])
def test_top_movement_mask_rejects_bad_budgets(kwargs):
    base, ft = states()
    with pytest.raises(ValueError, match="size|density"):
        top_movement_mask(base, ft, **kwargs)


def test_mask_size_and_jaccard_match_set_arithmetic():
    g = torch.Generator().manual_seed(2)
    a = {"x": torch.rand(6, generator=g) < 0.5, "y": torch.rand(2, 3, generator=g) < 0.5}
    b = {"x": torch.rand(6, generator=g) < 0.5, "y": torch.rand(2, 3, generator=g) < 0.5}

    def as_set(m):
        return {(k, i) for k, t in m.items() for i, v in enumerate(t.reshape(-1)) if v}

    sa, sb = as_set(a), as_set(b)
    assert mask_size(a) == len(sa)
    assert jaccard(a, b) == pytest.approx(len(sa & sb) / len(sa | sb))
    assert jaccard(a, a) == 1.0
    none = {k: torch.zeros_like(v) for k, v in a.items()}
    assert jaccard(none, none) == 1.0 and jaccard(a, none) == 0.0
    with pytest.raises(ValueError, match="different tensors"):
        jaccard(a, {"x": a["x"]})


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))


def test_relaxed_graft_evaluates_the_model_at_the_relaxed_weights():
    torch.manual_seed(0)
    net = Net()
    base = {k: v.detach().clone() for k, v in net.body.state_dict().items()}
    ft = {k: v + torch.randn_like(v) for k, v in base.items()}
    init = top_movement_mask(base, ft, size=5)
    torch.manual_seed(4)
    relaxed = RelaxedGraft(net, base, ft, init, prefix="body.", sigmoid_bias=2.0)
    with torch.no_grad():
        for s in relaxed.logits:
            s.normal_()
    with torch.no_grad():
        gamma = relaxed.relaxed()
    x = torch.randn(7, 4)
    want = Net()
    want.load_state_dict(net.state_dict())
    for k in base:  # γ(S) = b + (1 - 2b)σ(S), entry by entry
        b, s = init[k].float().reshape(-1), relaxed.logits[relaxed.keys.index(k)].detach().reshape(-1)
        for i in range(b.numel()):
            g = float(b[i] + (1 - 2 * b[i]) * torch.sigmoid(s[i]))
            assert float(gamma[k].reshape(-1)[i]) == pytest.approx(g, abs=1e-6)
        getattr(want.body, k).data = base[k] + gamma[k] * (ft[k] - base[k])
    assert torch.allclose(relaxed(x), want(x), atol=1e-6)
    assert all(not p.requires_grad for p in relaxed.model.parameters())
    assert [n for n, p in relaxed.named_parameters() if p.requires_grad] == ["logits.0", "logits.1"]
    with pytest.raises(ValueError, match="prefix"):
        RelaxedGraft(net, base, ft, init)


def test_relaxed_graft_starts_near_the_initial_mask():
    torch.manual_seed(0)
    net = Net()
    base = {k: v.detach().clone() for k, v in net.body.state_dict().items()}
    ft = {k: v + 1 for k, v in base.items()}
    init = top_movement_mask(base, ft, size=3)
    with torch.no_grad():
        gamma = RelaxedGraft(net, base, ft, init, prefix="body.", sigmoid_bias=8.0).relaxed()
    bound = float(torch.sigmoid(torch.tensor(1.0 - 8.0)))  # S ~ U[0, 1) - bias
    assert all(torch.all((gamma[k] - init[k].float()).abs() <= bound) for k in base)


def test_normalized_sgd_moves_the_largest_gradient_by_lr():
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.ones(2))
    a.grad, b.grad = torch.tensor([1.0, -4.0, 0.5]), torch.tensor([2.0, 0.0])
    NormalizedSGD([a, b], lr=0.3).step()
    assert torch.allclose(a.detach(), -0.3 * torch.tensor([1.0, -4.0, 0.5]) / 4)
    assert torch.allclose(b.detach(), 1 - 0.3 * torch.tensor([2.0, 0.0]) / 4)
    a.grad = torch.zeros(3)
    b.grad = None
    before = a.detach().clone()
    NormalizedSGD([a, b], lr=0.3).step()  # no gradient: nothing moves
    assert torch.equal(a.detach(), before)
    with pytest.raises(ValueError, match="lr"):
        NormalizedSGD([a], lr=0.0)


def test_learn_mask_swaps_large_useless_moves_for_small_useful_ones():
    """Inputs 0-1 carry the label, inputs 2-5 are always zero. The fine-tune moved the weights of
    the useless inputs most, so the magnitude mask picks them and the graft is no better than the
    base; the learned mask of the same size takes the useful entries instead."""
    torch.manual_seed(0)
    x = torch.zeros(256, 6)
    x[:, :2] = torch.randn(256, 2)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Linear(6, 2)
    base = {"weight": torch.zeros(2, 6), "bias": torch.zeros(2)}
    ft = {"weight": torch.zeros(2, 6), "bias": torch.zeros(2)}
    ft["weight"][1, :2] = 1.0  # the useful, small moves
    ft["weight"][:, 2:] = 5.0  # the useless, large moves
    magnitude = top_movement_mask(base, ft, size=2)
    assert bool(magnitude["weight"][:, :2].any()) is False
    learned = learn_mask(model, base, ft, (x, y), size=2, steps=30, lr=1.0, batch_size=64, seed=0)
    assert mask_size(learned) == 2
    assert bool(learned["weight"][1, 0]) and bool(learned["weight"][1, 1])
    grafted = graft(base, ft, learned)
    acc = float(((x @ grafted["weight"].T + grafted["bias"]).argmax(1) == y).float().mean())
    assert acc == 1.0
    assert model.weight.requires_grad  # the caller's model is left as it was
