"""Model growth (nbsupport.warmup.growth): G_stack copies layers in order, the control adds fresh ones."""

from __future__ import annotations

import pytest
import torch

from nbsupport.models.gpt import GPT, GPTConfig
from nbsupport.warmup.growth import grow_depth


def small(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab=11, block=8, d=16, layers=2, heads=2))


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_stack_repeats_the_layer_sequence_and_keeps_the_rest():
    m = small()
    g = grow_depth(m, 3, "stack")
    assert g.cfg.layers == 6 and m.cfg.layers == 2
    for i in range(6):
        assert same(g.blocks[i], m.blocks[i % 2])
    for name in ("tok", "pos", "ln_f", "head"):
        assert same(getattr(g, name), getattr(m, name))
    # copies, not shared modules: training the grown model leaves the small one alone
    with torch.no_grad():
        g.blocks[2].mlp[0].weight.add_(1.0)
    assert same(g.blocks[0], m.blocks[0]) and not same(g.blocks[2], m.blocks[0])


def test_random_growth_keeps_trained_layers_first_and_adds_fresh_ones():
    m = small()
    g = grow_depth(m, 2, "random")
    assert same(g.blocks[0], m.blocks[0]) and same(g.blocks[1], m.blocks[1])
    assert not same(g.blocks[2], m.blocks[0]) and not same(g.blocks[3], m.blocks[1])
    x = torch.randint(0, 11, (2, 8))
    assert g(x).shape == (2, 8, 11)


def test_one_layer_stacked_twice_computes_the_layer_twice():
    # the grown forward pass is the small model's with its layer sequence applied again
    m = small()
    g = grow_depth(m, 2, "stack")
    x = torch.randint(0, 11, (2, 8))
    with torch.no_grad():
        h = m.tok(x) + m.pos(torch.arange(8))
        for blk in list(m.blocks) * 2:
            h = blk(h)
        expected = m.head(m.ln_f(h))
    torch.testing.assert_close(g(x), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="factor"):
        grow_depth(small(), 1)
    with pytest.raises(ValueError, match="how"):
        grow_depth(small(), 2, "split")
