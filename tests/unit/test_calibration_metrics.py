"""nbsupport.calibration metrics against brute force, torchmetrics, and on bad input."""

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from nbsupport import calibration as cal


def _data(n=2000, c=7, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, c, generator=g) * scale).to(dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return z, y


def brute_ece(conf, correct, edges, norm="l1"):
    """Loop over bins [e_b, e_{b+1}); the first bin also takes < e_1, the last takes >= e_{B-1}."""
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    nb = len(edges) - 1
    gaps, weights = [], []
    for b in range(nb):
        lo = -np.inf if b == 0 else edges[b]
        hi = np.inf if b == nb - 1 else edges[b + 1]
        m = (conf >= lo) & (conf < hi)
        if m.sum():
            gaps.append(abs(correct[m].mean() - conf[m].mean()))
            weights.append(m.sum() / len(conf))
    gaps, weights = np.array(gaps), np.array(weights)
    if norm == "l1":
        return float((weights * gaps).sum())
    if norm == "l2":
        return float(np.sqrt((weights * gaps**2).sum()))
    return float(gaps.max())


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_matches_brute_force(norm, n_bins):
    z, y = _data()
    p = torch.softmax(z, 1)
    conf, pred = p.max(1)
    edges = np.linspace(0, 1, n_bins + 1)
    want = brute_ece(conf.numpy(), (pred == y).numpy(), edges, norm)
    assert cal.ece(p, y, n_bins=n_bins, norm=norm) == pytest.approx(want, abs=1e-12)
    assert cal.ece(z, y, n_bins=n_bins, norm=norm, from_logits=True) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_mass_binning_matches_brute_force(norm):
    z, y = _data(n=1000)
    p = torch.softmax(z, 1)
    conf, pred = p.max(1)
    edges = np.quantile(conf.numpy(), np.linspace(0, 1, 11))
    edges[0], edges[-1] = 0.0, 1.0
    want = brute_ece(conf.numpy(), (pred == y).numpy(), edges, norm)
    assert cal.ece(p, y, n_bins=10, norm=norm, binning="mass") == pytest.approx(want, abs=1e-12)
    counts = cal.reliability(p, y, n_bins=10, binning="mass")["count"]
    assert counts.min() >= 99 and counts.max() <= 101  # equal mass


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("c", [2, 10, 100])
def test_ece_equals_torchmetrics(norm, c):
    z, y = _data(n=3000, c=c, dtype=torch.float32, seed=c)
    p = torch.softmax(z, 1)
    assert float(p.max()) < 1.0  # torchmetrics differs only at confidence exactly 1
    want = float(multiclass_calibration_error(p, y, num_classes=c, n_bins=15, norm=norm))
    assert cal.ece(p, y, norm=norm) == pytest.approx(want, abs=2e-6)
    assert cal.ece(z, y, norm=norm, from_logits=True) == pytest.approx(want, abs=2e-6)


def test_confidence_exactly_one_and_zero_land_in_edge_bins():
    # one-hot predictions: confidence exactly 1
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0])
    table = cal.reliability(p, y, n_bins=10)
    assert table["count"].sum() == 4 and len(table) == 10
    assert table["count"].iloc[-1] == 3 and table["count"].iloc[5] == 1
    # last bin: confidence 1, accuracy 2/3; bin [0.5, 0.6): confidence 0.5, accuracy 1
    assert cal.ece(p, y, n_bins=10) == pytest.approx(3 / 4 * (1 / 3) + 1 / 4 * 0.5)
    # classwise: p_k exactly 0 lands in the first bin
    want = np.mean([brute_ece(p[:, k].numpy(), (y == k).numpy(), np.linspace(0, 1, 11)) for k in range(2)])
    assert cal.classwise_ece(p, y, n_bins=10) == pytest.approx(want)
    # from logits with a huge margin: confidence rounds to 1 in float32
    z = torch.tensor([[100.0, 0.0], [0.0, 100.0]])
    t = cal.reliability(z, torch.tensor([0, 0]), n_bins=5, from_logits=True)
    assert t["count"].iloc[-1] == 2 and t["count"].sum() == 2


def test_classwise_ece_brute_force():
    z, y = _data(n=500, c=4)
    p = torch.softmax(z, 1)
    edges = np.linspace(0, 1, 16)
    want = np.mean([brute_ece(p[:, k].numpy(), (y == k).numpy(), edges) for k in range(4)])
    assert cal.classwise_ece(p, y) == pytest.approx(want, abs=1e-12)
    assert cal.classwise_ece(z, y, from_logits=True) == pytest.approx(want, abs=1e-12)


def test_nll_brier_accuracy_brute_force():
    z, y = _data(n=300, c=5)
    p = torch.softmax(z, 1).numpy()
    yn = y.numpy()
    nll = -np.mean([math.log(p[i, yn[i]]) for i in range(len(yn))])
    brier = np.mean([sum((p[i, k] - (yn[i] == k)) ** 2 for k in range(5)) for i in range(len(yn))])
    assert cal.nll(p, yn) == pytest.approx(nll, rel=1e-10)
    assert cal.nll(z, y, from_logits=True) == pytest.approx(nll, rel=1e-10)
    assert cal.brier(p, yn) == pytest.approx(brier, rel=1e-10)
    assert cal.brier(z, y, from_logits=True) == pytest.approx(brier, rel=1e-10)
    assert cal.accuracy(p, yn) == pytest.approx(np.mean(p.argmax(1) == yn))


def test_temperature_argument_equals_scaled_logits():
    z, y = _data(n=400)
    for f in (cal.ece, cal.nll, cal.brier, cal.classwise_ece):
        assert f(z, y, from_logits=True, temperature=2.5) == pytest.approx(f(z / 2.5, y, from_logits=True), abs=1e-12)


def test_reliability_table_consistent_with_ece():
    z, y = _data(n=800)
    t = cal.reliability(z, y, from_logits=True)
    assert list(t.columns) == ["lo", "hi", "confidence", "accuracy", "count", "gap"]
    ok = t["count"] > 0
    w = t["count"][ok] / t["count"].sum()
    assert (w * t["gap"][ok].abs()).sum() == pytest.approx(cal.ece(z, y, from_logits=True), abs=1e-12)


def test_perfectly_calibrated_sampling_has_small_ece():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200_000, 4, generator=g, dtype=torch.float64) * 2
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    assert cal.ece(z, y, from_logits=True) < 0.01


@pytest.mark.parametrize("bad, match", [
    (lambda p, y: (p * 0.9, y), "sum to one"),
    (lambda p, y: (p[:0], y[:0]), "empty"),
    (lambda p, y: (p, y + 10), "out of range"),
    (lambda p, y: (p, -y - 1), "out of range"),
    (lambda p, y: (p, y[:-1]), "labels must have shape"),
    (lambda p, y: (p, y.float()), "integer"),
    (lambda p, y: (p[:, 0], y), "2-D"),
    (lambda p, y: (torch.where(p > 0.5, torch.nan, p), y), "NaN"),
    (lambda p, y: (p - 0.5, y), r"\[0, 1\]"),
])
def test_bad_probabilities_raise(bad, match):
    z, y = _data(n=50, c=3)
    p, yb = bad(torch.softmax(z, 1), y)
    with pytest.raises(ValueError, match=match):
        cal.ece(p, yb)


@pytest.mark.parametrize("impl", ["reference", "fast", "triton"])
@pytest.mark.parametrize("poison", ["nan", "+inf", "row of -inf"])
def test_non_finite_logits_raise_on_every_path(impl, poison):
    """ece checks finiteness on the histogram's Σ confidence, which every path must poison."""
    if impl == "triton":
        pytest.importorskip("triton")
    z, y = _data(n=20, c=5, dtype=torch.float32)
    if poison == "row of -inf":
        z[4] = -torch.inf
    else:
        z[4, 2] = torch.nan if poison == "nan" else torch.inf
    with pytest.raises(ValueError, match="NaN"):
        cal.ece(z, y, from_logits=True, impl=impl)


def test_bad_logits_and_options_raise():
    z, y = _data(n=50, c=3)
    zn = z.clone()
    zn[3, 1] = torch.nan
    for f in (cal.ece, cal.nll, cal.brier, cal.classwise_ece):
        with pytest.raises(ValueError, match="NaN"):
            f(zn, y, from_logits=True)
    with pytest.raises(ValueError, match="temperature"):
        cal.ece(z, y, from_logits=True, temperature=0.0)
    with pytest.raises(ValueError, match="out of range"):
        cal.ece(z, y + 3, from_logits=True)
    with pytest.raises(ValueError, match="n_bins"):
        cal.ece(z, y, n_bins=0, from_logits=True)
    with pytest.raises(ValueError, match="norm"):
        cal.ece(z, y, norm="l3", from_logits=True)
    with pytest.raises(ValueError, match="binning"):
        cal.ece(z, y, binning="quantile", from_logits=True)
    with pytest.raises(TypeError):
        cal.ece("probs", y)


def test_ece_contributions_mean_is_ece_and_sign_follows_bins():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(400, 6, generator=g, dtype=torch.float64) * 2, 1)
    y = torch.randint(0, 6, (400,), generator=g)
    e = cal.ece_contributions(p, y, 10)
    assert e.shape == (400,) and e.dtype == torch.float64
    assert abs(float(e.mean()) - cal.ece(p, y, 10)) < 1e-12
    # brute force: per bin, sum of contributions = count * |acc - conf|
    conf, pred = p.max(1)
    b = torch.clamp((conf * 10).long(), max=9)
    for k in range(10):
        m = b == k
        if m.any():
            gap = abs(float((pred[m] == y[m]).double().mean() - conf[m].mean()))
            assert abs(float(e[m].sum()) - int(m.sum()) * gap) < 1e-9


def test_nll_per_example_matches_nll():
    g = torch.Generator().manual_seed(4)
    p = torch.softmax(torch.randn(50, 4, generator=g, dtype=torch.float64), 1)
    y = torch.randint(0, 4, (50,), generator=g)
    per = cal.nll_per_example(p, y)
    assert torch.allclose(per, -torch.log(p[torch.arange(50), y]))
    assert abs(float(per.mean()) - cal.nll(p, y)) < 1e-12
