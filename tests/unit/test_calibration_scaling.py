"""fit_temperature and the post-hoc calibrators."""

import math
import warnings

import numpy as np
import pytest
import torch

from nbsupport import calibration as cal


def _synthetic(t_true, n=20000, c=10, seed=0):
    """Labels drawn from softmax(z); the model reports z * t_true, so the best temperature is t_true."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    return z * t_true, y


@pytest.mark.parametrize("t_true", [0.3, 1.0, 2.5, 6.0])
def test_fit_temperature_recovers_known_t(t_true):
    z, y = _synthetic(t_true)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = cal.fit_temperature(z, y)
    assert t == pytest.approx(t_true, rel=0.05)
    # it is the NLL minimum: nearby temperatures are worse
    best = cal.nll(z, y, from_logits=True, temperature=t)
    assert best <= cal.nll(z, y, from_logits=True, temperature=t * 1.05)
    assert best <= cal.nll(z, y, from_logits=True, temperature=t / 1.05)


def test_fit_temperature_float32_and_numpy_inputs():
    z, y = _synthetic(2.0, n=5000)
    assert cal.fit_temperature(z.float().numpy(), y.numpy()) == pytest.approx(2.0, rel=0.08)


def test_fit_temperature_warns_at_bound_and_stays_finite():
    # separable data, correct and confident: NLL keeps falling as T -> 0
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (300,), generator=g)
    z = torch.nn.functional.one_hot(y, 3).double() * 5 + 0.01 * torch.randn(300, 3, generator=g, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="bound"):
        t = cal.fit_temperature(z, y, bounds=(0.05, 20.0))
    assert math.isfinite(t) and t == pytest.approx(0.05, rel=1e-2)
    # labels independent of constant-ish logits: NLL falls as T -> inf
    z = torch.randn(400, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (400,), generator=g)
    z = torch.where(torch.arange(4) == y[:, None], -z.abs() - 3, z.abs())  # anti-informative logits
    with pytest.warns(RuntimeWarning, match="bound"):
        t = cal.fit_temperature(z, y, bounds=(0.05, 20.0))
    assert math.isfinite(t) and t > 0


def test_fit_temperature_bracketing_fallback(monkeypatch):
    z, y = _synthetic(3.0, n=4000)

    def broken_step(self, closure):
        closure()
        for group in self.param_groups:
            for p in group["params"]:
                p.data.fill_(float("nan"))

    monkeypatch.setattr(torch.optim.LBFGS, "step", broken_step)
    assert cal.fit_temperature(z, y) == pytest.approx(3.0, rel=0.08)


def test_fit_temperature_bad_input():
    z, y = _synthetic(1.0, n=100)
    zn = z.clone()
    zn[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cal.fit_temperature(zn, y)
    with pytest.raises(ValueError, match="empty"):
        cal.fit_temperature(z[:0], y[:0])
    with pytest.raises(ValueError, match="out of range"):
        cal.fit_temperature(z, y + 100)
    with pytest.raises(ValueError, match="bounds"):
        cal.fit_temperature(z, y, bounds=(-1.0, 2.0))
    with pytest.raises(ValueError, match="init"):
        cal.fit_temperature(z, y, init=50.0)


def test_calibrators_lower_nll_on_miscalibrated_logits():
    z, y = _synthetic(4.0, n=6000, seed=3)
    zf, yf, zt, yt = z[:3000], y[:3000], z[3000:], y[3000:]
    before = cal.nll(zt, yt, from_logits=True)
    for calibrator in (cal.TemperatureScaling(), cal.VectorScaling(), cal.HistogramBinning(),
                       cal.IsotonicCalibration()):
        p = calibrator.fit(zf, yf).predict_proba(zt)
        assert p.shape == zt.shape
        assert torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-9)
        assert cal.ece(p, yt) < cal.ece(zt, yt, from_logits=True)
        if not isinstance(calibrator, cal.HistogramBinning):  # binning can put zeros on true labels
            assert cal.nll(p, yt) < before


def test_vector_scaling_with_identity_data_stays_near_identity():
    z, y = _synthetic(1.0, n=20000, c=5, seed=4)
    vs = cal.VectorScaling().fit(z, y)
    assert torch.allclose(vs.w, torch.ones(5, dtype=torch.float64), atol=0.1)
    assert torch.allclose(vs.b - vs.b.mean(), torch.zeros(5, dtype=torch.float64), atol=0.1)


def test_histogram_binning_table_is_bin_frequency():
    z, y = _synthetic(1.0, n=3000, c=3, seed=5)
    hb = cal.HistogramBinning(n_bins=5).fit(z, y)
    p = torch.softmax(z, 1).numpy()
    b = np.clip((p[:, 0] * 5).astype(int), 0, 4)
    for k in range(5):
        if (b == k).any():
            assert hb.table[0, k] == pytest.approx(np.mean(y.numpy()[b == k] == 0))


def test_unfitted_calibrators_raise():
    z = torch.randn(4, 3)
    for c in (cal.VectorScaling(), cal.HistogramBinning(), cal.IsotonicCalibration()):
        with pytest.raises(RuntimeError, match="fit"):
            c.predict_proba(z)
