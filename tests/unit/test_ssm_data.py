"""Long-range sequence tasks: shapes, seeding, and the construction of each target."""

import pytest
import torch

from nbsupport.data import sequences as seq


def test_copying_layout_and_seed():
    x, y = seq.copying(5, delay=100, n_symbols=4, copy_len=3, seed=1)
    assert x.shape == (5, 106, 6) and y.shape == (5, 106)
    tokens = x.argmax(-1)
    assert (tokens[:, 3:103] == 0).all() and (tokens[:, 103] == 1).all()
    torch.testing.assert_close(y[:, -3:], tokens[:, :3] - 2)
    assert (y[:, :-3] == seq.IGNORE).all()
    x2, y2 = seq.copying(5, delay=100, n_symbols=4, copy_len=3, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_delayed_recall_is_a_shift():
    x, y, mask = seq.delayed_recall(4, 1100, delay=300, cutoff=0.05, seed=2)
    assert x.shape == y.shape == (4, 1100, 1)
    torch.testing.assert_close(y[:, 300:], x[:, :-300])
    assert mask.sum() == 800 and not mask[:300].any()
    spectrum = torch.fft.rfft(x[..., 0], dim=-1).abs()
    assert spectrum[:, torch.fft.rfftfreq(1100) > 0.05].max() < 1e-3  # band-limited
    assert seq.r2_score(y, y, mask) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        seq.delayed_recall(2, 10, delay=10)


def test_adding_targets():
    x, y = seq.adding(6, 1024, seed=3)
    assert x.shape == (6, 1024, 2)
    assert (x[..., 1].sum(1) == 2).all()
    torch.testing.assert_close(y, (x[..., 0] * x[..., 1]).sum(1))
    assert (x[:, :512, 1].sum(1) == 1).all()


def test_smnist_split_and_downsampling():
    d = seq.smnist(100, 50, size=14, seed=0)
    assert d["x_train"].shape == (100, 196, 1) and d["x_test"].shape == (50, 196, 1)
    assert d["x_train"].min() >= 0 and d["x_train"].max() <= 1
    assert len(set(d["y_train"].tolist())) > 5  # shuffled, not sorted by label
    full = seq.smnist(10, 10, seed=0)
    assert full["x_train"].shape == (10, 784, 1)
    torch.testing.assert_close(full["x_train"].reshape(10, 14, 2, 14, 2).mean((2, 4)).reshape(10, 196, 1),
                               d["x_train"][:10])
    with pytest.raises(ValueError):
        seq.smnist(4000, 2000)
