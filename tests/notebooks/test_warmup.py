"""The warmup notebooks at smoke scale: they run, record what their claims rest on, and
state every claim (held or not: claims may not hold at smoke scale)."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow


def finite(x) -> bool:
    if isinstance(x, dict):
        return all(finite(v) for v in x.values())
    if isinstance(x, list):
        return all(finite(v) for v in x)
    return isinstance(x, (int, float)) and math.isfinite(x)


def claim_names(claims):
    return {c["name"] for c in claims}


def test_01_schedule_gallery(run_notebook):
    records, claims = run_notebook("warmup/01_schedule_gallery.ipynb")
    assert records["library_pairs_compared"] >= 2
    assert 0 <= records["max_abs_difference_vs_libraries"] < 1e-9
    before, after = records["timm_lr_before_after_warmup_end"]
    assert 0 < after <= 1 and 0 < before <= 1
    assert records["sequentiallr_milestone0_lr_step0"] == pytest.approx(1.0)
    assert claim_names(claims) == {"schedules_match_libraries", "timm_drop_at_warmup_end",
                                   "sequentiallr_milestone0_skips_warmup", "optax_decay_steps_ends_early"}


def test_02_rewarming(run_notebook):
    records, claims = run_notebook("warmup/02_rewarming_continual_pretraining.ipynb")
    final = records["final_losses"]
    assert set(final) == {"run", "val_upstream", "val_downstream"}
    assert {"no rewarm", "from scratch", "peak 1, warmup 1%", "peak 2, warmup 1%"} <= set(final["run"])
    assert finite(final["val_upstream"]) and finite(final["val_downstream"])
    assert all(0 < v < 10 for v in final["val_downstream"])
    for name in ("early_gap_upstream_rewarm_minus_norewarm", "spread_final_downstream_over_warmups",
                 "spread_final_downstream_over_peaks", "final_downstream_scratch"):
        assert finite(records[name])
    assert records["spread_final_downstream_over_peaks"] >= 0
    assert claim_names(claims) == {"rewarm_raises_loss_first", "rewarm_beats_no_rewarm", "higher_peak_forgets_more",
                                   "warmup_matters_less_than_peak", "pretrained_beats_scratch"}


def test_03_wsd_vs_cosine(run_notebook):
    records, claims = run_notebook("warmup/03_wsd_vs_cosine.ipynb")
    budgets = [str(b) for b in records["budgets"]]
    assert set(records["cosine_final"]) == set(budgets) == set(records["wsd_final"])
    assert finite(records["cosine_final"]) and finite(records["wsd_final"])
    assert set(records["final_by_decay_shape"]) == {"linear", "cosine", "1-sqrt", "exponential"}
    assert len(records["final_by_decay_fraction"]) == 3
    assert records["power_fit"]["a"] > 0 and finite(records["power_fit"]["b"])
    assert claim_names(claims) == {"wsd_matches_cosine", "loss_drops_sharply_in_decay",
                                   "decay_10pct_beats_2p5pct", "best_lr_falls_with_budget"}


def test_04_small_scale_instabilities(run_notebook):
    records, claims = run_notebook("warmup/04_small_scale_instabilities.ipynb")
    lrs = records["lrs"]
    assert len(lrs) >= 2 and lrs == sorted(lrs)
    sens = records["lr_sensitivity"]
    assert len(sens) >= 6 and all(v >= 0 for v in sens.values())
    for name, losses in records.items():
        if name.startswith("final_loss:"):
            assert len(losses) == len(lrs) and all(0 < x <= records["init_loss"] + 1e-9 for x in losses)
    logits = records["max_attn_logit_by_config"]
    assert all(v > 0 for vs in logits.values() for v in vs)
    assert claim_names(claims) == {"no_qknorm_logits_grow_and_loss_diverges", "qknorm_lowers_lr_sensitivity",
                                   "zloss_keeps_log_z_near_zero", "longer_warmup_lowers_lr_sensitivity"}


def test_04_single_lr_mode_for_sweeps(run_notebook):
    records, claims = run_notebook("warmup/04_small_scale_instabilities.ipynb", LR=0.01, SEED=1)
    assert records["lrs"] == [0.01] and records["seeds"] == [1]
    assert 0 < records["final_loss"] <= records["init_loss"] + 1e-9
    assert claims == []


def test_05_certified_short_warmup(run_notebook):
    records, claims = run_notebook("warmup/05_certified_short_warmup.ipynb")
    final = records["final_errors"]
    assert len(final["run"]) == 4
    assert all(0 <= e <= 1 for e in final["clean_error"] + final["verified_error"])
    # a certified prediction is also a correct one: verified error >= clean error
    assert all(v >= c - 1e-9 for v, c in zip(final["verified_error"], final["clean_error"], strict=True))
    assert claim_names(claims) == {"short_ramp_matches_long_with_ibp_init", "ibp_init_beats_default_with_short_ramp"}
