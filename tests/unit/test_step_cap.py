"""The step cap ($NBSUPPORT_MAX_STEPS): training loops, presets, claims and the summary."""

import importlib

import pytest
import torch

from nbsupport.evidence import premise
from nbsupport.scales import CAP_PREMISE, MAX_STEPS_ENV, cap_premise, capped_steps, preset, step_cap
from nbsupport.train import fit

rec = importlib.import_module("nbsupport.record")

PRESETS = {"smoke": {"steps": 5, "n_test": 50, "widths": [1, 2], "chars": 10},
           "standard": {"steps": 50, "n_test": 500, "widths": [1, 2, 3], "chars": 100},
           "full": {"steps": 500, "n_test": 5000, "widths": [1, 2, 3, 4], "chars": None}}


@pytest.fixture
def capped(monkeypatch):
    monkeypatch.setenv(MAX_STEPS_ENV, "3")
    monkeypatch.delenv("NBSUPPORT_SCALE", raising=False)


def test_step_cap_unset_empty_and_bad(monkeypatch):
    monkeypatch.delenv(MAX_STEPS_ENV, raising=False)
    assert step_cap() is None and capped_steps(7) == 7 and cap_premise() == {}
    monkeypatch.setenv(MAX_STEPS_ENV, " ")
    assert step_cap() is None
    for bad in ("0", "-2", "three", "1.5"):
        monkeypatch.setenv(MAX_STEPS_ENV, bad)
        with pytest.raises(ValueError, match="NBSUPPORT_MAX_STEPS must be a positive int"):
            step_cap()


def test_capped_steps_is_the_minimum(capped):
    assert step_cap() == 3
    assert [capped_steps(n) for n in (1, 3, 4, 1000)] == [1, 3, 3, 3]
    assert [p.ok for p in cap_premise().values()] == [False] and list(cap_premise()) == [CAP_PREMISE]


def test_preset_lowers_named_values_only_under_the_cap(monkeypatch, capsys):
    monkeypatch.delenv(MAX_STEPS_ENV, raising=False)
    monkeypatch.delenv("NBSUPPORT_SCALE", raising=False)
    limits = {"n_test": 200, "widths": 2, "chars": 1000}
    assert preset(PRESETS, "full", capped=limits).n_test == 5000  # no cap: unchanged
    monkeypatch.setenv(MAX_STEPS_ENV, "3")
    p = preset(PRESETS, "full", capped=limits)
    assert (p.steps, p.n_test, p.widths, p.chars) == (500, 200, [1, 2], 1000)  # steps: the loops cap them
    assert preset(PRESETS, "smoke", capped=limits).n_test == 50  # already below
    assert "STEP-CAPPED RUN" in capsys.readouterr().out
    assert rec._RECORDS["step_cap"] == {"max_steps": 3, "scale": "smoke",
                                         "lowered": {"n_test": 50, "widths": [1, 2], "chars": 10}}
    assert preset(PRESETS, "full", capped={"widths": [5, 6]}).widths == [5, 6]  # a list: replaced
    with pytest.raises(ValueError, match="lacks"):
        preset(PRESETS, "full", capped={"n_tset": 1})
    with pytest.raises(ValueError, match="first n entries"):
        preset(PRESETS, "full", capped={"widths": 0.5})


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    return x, (x @ torch.tensor([1.0, -2.0, 0.5]) > 0).long()


def test_fit_stops_at_the_cap(capped):
    x, y = _data()
    res = fit(lambda s: torch.nn.Linear(3, 2), (x, y), steps=100, batch_size=16, seeds=[0, 1], workers=1,
              eval_fn=lambda m: {"acc": 0.0}, eval_every=50, progress=False)
    assert res.log.groupby("seed").step.max().tolist() == [3, 3]
    assert res.final.acc.notna().all()  # the last (capped) step is evaluated


def test_claims_are_not_judged_under_the_cap(capped):
    rec.claim("capped_claim", "A beats B", [1.0, 1.1, 0.9, 1.2], margin=0.1,
              requires={"A trained": premise(0.9, ">", 0.5)})
    entry = rec._CLAIMS["capped_claim"]
    assert entry["verdict"] == "not judged" and CAP_PREMISE in entry["reason"]
    assert [(p["statement"], p["ok"]) for p in entry["premises"]] == [("A trained", True), (CAP_PREMISE, False)]


def test_claims_are_judged_without_the_cap(monkeypatch):
    monkeypatch.delenv(MAX_STEPS_ENV, raising=False)
    rec.claim("uncapped_claim", "A beats B", [1.0, 1.1, 0.9, 1.2], margin=0.1)
    assert rec._CLAIMS["uncapped_claim"]["verdict"] == "reproduced"


def test_summary_says_the_run_was_capped(capped, monkeypatch):
    shown = []
    monkeypatch.setattr(rec, "_display", shown.append)
    rec.summary()
    assert "Step-capped run (NBSUPPORT_MAX_STEPS=3)" in shown[-1]["text/plain"]
    assert "no claim is judged" in shown[-1]["text/html"]
    monkeypatch.delenv(MAX_STEPS_ENV)
    rec.summary()
    assert "Step-capped" not in shown[-1]["text/plain"]


def test_a_check_that_needs_training_is_skipped_only_under_the_cap(capped, monkeypatch):
    rec.check("trained_beats_baseline", False, "training beats the baseline", needs_training=True, loss=3.0)
    entry = rec._CHECKS["trained_beats_baseline"]
    assert entry["ok"] and entry["held"] is False and "step-capped" in entry["skipped"]
    assert entry["numbers"] == {"loss": 3.0}
    assert "1 skipped (step-capped run)" in rec.checks_html([entry])
    rec.check("identity", False, "an identity", loss=3.0)  # not marked: fails under the cap too
    assert not rec._CHECKS["identity"]["ok"]
    monkeypatch.delenv(MAX_STEPS_ENV)
    rec.check("trained_beats_baseline", False, "training beats the baseline", needs_training=True)
    assert not rec._CHECKS["trained_beats_baseline"]["ok"] and "skipped" not in rec._CHECKS["trained_beats_baseline"]
