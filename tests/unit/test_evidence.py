"""Intervals and verdicts of claims: against scipy's t interval, a brute-force bootstrap and,
by simulation, their coverage (a null effect is judged either way in about 10 % of cases)."""

import math

import numpy as np
import pytest
from scipy import stats

from nbsupport.evidence import BOOTSTRAP_FROM, interval, judge, verdict


def test_t_interval_equals_scipy():
    x = np.array([0.3, 0.1, 0.25, 0.4, 0.05])
    iv = interval(x, level=0.9)
    lo, hi = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert iv.method == "t" and iv.n == 5
    assert iv.lo == pytest.approx(lo, rel=1e-12) and iv.hi == pytest.approx(hi, rel=1e-12)


def test_one_unit_is_unbounded_and_identical_units_are_exact():
    iv = interval([0.5])
    assert iv.lo == -math.inf and iv.hi == math.inf
    assert verdict(iv.lo, iv.hi, ">") == "inconclusive"
    iv = interval([0.2, 0.2, 0.2])
    assert iv.lo == pytest.approx(0.2) and iv.hi == pytest.approx(0.2)


def test_bootstrap_is_percentile_of_resampled_means_and_reproducible():
    rng = np.random.default_rng(5)
    x = rng.normal(0.1, 1.0, 200)
    iv = interval(x, n_boot=2000)
    assert iv.method == "bootstrap"
    gen = np.random.default_rng(0)
    means = x[gen.integers(0, len(x), size=(2000, len(x)))].mean(axis=1)
    assert (iv.lo, iv.hi) == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])))
    assert interval(x, n_boot=2000) == iv


@pytest.mark.parametrize(("lo", "hi", "expect", "margin", "want"), [
    (0.2, 0.5, ">", 0.1, "reproduced"), (0.05, 0.5, ">", 0.1, "inconclusive"),
    (-0.5, -0.1, ">", 0.0, "contradicted"), (-0.5, -0.2, "<", 0.1, "reproduced"),
    (0.1, 0.3, "<", 0.0, "contradicted"), (-0.05, 0.05, "≈", 0.1, "reproduced"),
    (-0.05, 0.15, "≈", 0.1, "inconclusive"), (0.12, 0.3, "≈", 0.1, "contradicted"),
])
def test_verdict_table(lo, hi, expect, margin, want):
    assert verdict(lo, hi, expect, margin) == want


def test_judge_not_judged_keeps_numbers():
    out = judge([0.3, 0.4, 0.35], requires={"model above chance": False, "fits train": True})
    assert out["verdict"] == "not judged" and "model above chance" in out["reason"]
    assert "fits train" not in out["reason"] and out["n"] == 3 and out["lo"] > 0


@pytest.mark.parametrize(("n", "method"), [(5, "t"), (60, "bootstrap")])
def test_null_effect_judged_either_way_about_ten_percent(n, method):
    """Coverage by simulation: under a null effect a 90 % interval excludes zero about 10 % of
    the time (5 % reproduced, 5 % contradicted), neither 0 % nor 30 %."""
    rng = np.random.default_rng(123)
    sims = 2000
    verdicts = [verdict(*(lambda iv: (iv.lo, iv.hi))(interval(rng.normal(0, 1, n), method=method, n_boot=400)), ">")
                for _ in range(sims)]
    rate = sum(v != "inconclusive" for v in verdicts) / sims
    assert 0.07 < rate < 0.14, rate
    assert abs(verdicts.count("reproduced") - verdicts.count("contradicted")) / sims < 0.04


def test_auto_switches_to_bootstrap_at_threshold():
    assert interval(np.arange(BOOTSTRAP_FROM - 1.0)).method == "t"
    assert interval(np.arange(float(BOOTSTRAP_FROM))).method == "bootstrap"
