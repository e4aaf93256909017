"""Intervals and verdicts of claims: against scipy's t interval, a brute-force bootstrap and,
by simulation, their coverage (a null effect is judged either way in about 10 % of cases, also
when trained models differ: the seed is the unit), power and Holm's correction."""

import math

import numpy as np
import pytest
from scipy import stats

from nbsupport.evidence import BOOTSTRAP_FROM, as_effect, holm, interval, judge, premise, verdict


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
    out = judge([0.3, 0.4, 0.35], margin=0.05, requires={"model above chance": premise(0.15, ">", 0.2),
                                                         "fits train": premise([0.99, 1.0], ">=", 0.99)})
    assert out["verdict"] == "not judged" and "model above chance (0.15 > 0.2)" in out["reason"]
    assert "fits train" not in out["reason"] and out["n"] == 3 and out["lo"] > 0
    fits = out["premises"][1]
    assert fits["ok"] and fits["value"] == pytest.approx(0.995) and (fits["low"], fits["high"]) == (0.99, 1.0)


def test_bare_boolean_premise_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"premise\(value, op, bound\)"):
        judge([0.3, 0.4], margin=0.05, requires={"model above chance": True})
    with pytest.raises(ValueError, match="op"):
        premise(0.5, "=>", 0.2)


def test_directional_claim_needs_a_margin_or_a_reason():
    with pytest.raises(ValueError, match="smallest effect of interest"):
        judge([0.3, 0.4, 0.35], expect=">")
    out = judge([0.3, 0.4, 0.35], expect=">", sign_only="the paper reports only the sign")
    assert out["verdict"] == "reproduced" and out["sign_only"]
    with pytest.raises(ValueError, match="sign_only"):
        judge([0.3, 0.4, 0.35], margin=0.1, sign_only="why")


def test_two_dimensional_effect_is_judged_over_seed_means():
    rng = np.random.default_rng(3)
    rows = [rng.normal(0.1, 1, n) for n in (50, 60, 55)]  # ragged: users differ per seed
    out = judge(rows, unit="user", margin=0.01)
    means = [r.mean() for r in rows]
    ref = interval(means, method="t")
    assert out["n"] == 3 and out["over"] == "seeds" and out["units_per_seed"] == [50, 60, 55]
    assert (out["lo"], out["hi"]) == pytest.approx((ref.lo, ref.hi))
    assert as_effect(np.ones((4, 7)), "example").units == [7] * 4


def test_one_dimensional_effect_over_units_needs_the_one_artifact_declaration():
    with pytest.raises(ValueError, match="about="):
        judge(np.ones(100), unit="example", margin=0.01)
    out = judge(np.random.default_rng(0).normal(0.5, 1, 100), unit="example", margin=0.01, about="one given model")
    assert out["over"] == "units" and out["method"] == "bootstrap" and out["about"] == "one given model"
    with pytest.raises(ValueError, match="unit="):
        judge(np.ones((3, 5)), margin=0.01)


def _null_study(rng, seeds=3, units=1000, seed_sd=0.05, unit_sd=0.3):
    """Paired effects of a method with no true effect: each seed's trained models differ."""
    return rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, unit_sd, (seeds, units))


@pytest.mark.parametrize("seeds", [3, 5])
def test_null_method_effect_with_seed_variance_judged_either_way_about_ten_percent(seeds):
    """The issue's simulation through the public API: 500 null studies, 3-5 seeds x 1000
    examples, seed SD 0.05, example SD 0.3; sign only (margin 0), so the rate is the test's
    size. The seed as the unit keeps it near 10 %; the old interval over examples did not."""
    rng = np.random.default_rng(2026)
    studies = [_null_study(rng, seeds) for _ in range(500)]
    judged = [judge(e, unit="example", sign_only="size of the test")["verdict"] for e in studies]
    rate = sum(v != "inconclusive" for v in judged) / len(judged)
    assert 0.05 <= rate <= 0.15, rate
    per_example = [verdict(*(lambda iv: (iv.lo, iv.hi))(interval(e.reshape(-1), n_boot=300)), ">")
                   for e in studies[:100]]
    assert sum(v != "inconclusive" for v in per_example) / 100 > 0.5  # pseudo-replication


def test_power_minimum_detectable_effect_is_detected_about_eighty_percent():
    """At the stated minimum detectable effect a directional claim is reproduced in about 80 %
    of simulated studies (t with 5 seeds; the SD is estimated, so a few points either way)."""
    rng = np.random.default_rng(11)
    sd, n, margin = 0.02, 5, 0.01
    mde = judge(rng.normal(0, sd, n), margin=margin)["mde"]
    mdes = [judge(rng.normal(0, sd, n), margin=margin)["mde"] for _ in range(300)]
    true = float(np.median(mdes))
    hits = [judge(rng.normal(true, sd, n), margin=margin)["verdict"] == "reproduced" for _ in range(1000)]
    assert 0.6 < np.mean(hits) < 0.9 and mde > margin


def test_inconclusive_says_underpowered_and_p_value_matches_verdict():
    out = judge([0.05, -0.02, 0.09], margin=0.01)
    assert out["verdict"] == "inconclusive" and out["reason"].startswith("underpowered: detectable ≥")
    assert "n = 3 seeds" in out["reason"]
    for x in ([0.3, 0.31, 0.29], [0.02, 0.03, 0.01, 0.05], [0.0, 0.1, -0.05]):
        out = judge(x, margin=0.01)
        assert (out["p"] < 0.05) == (out["verdict"] == "reproduced"), out


def test_holm_against_its_definition():
    ps = [0.01, 0.04, 0.03, 0.005, None]
    # sorted 0.005, 0.01, 0.03, 0.04 against 0.05/4, 0.05/3, 0.05/2, 0.05/1
    assert holm(ps) == [True, False, False, True, False]
    assert holm([0.001, 0.002]) == [True, True] and holm([]) == []


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
