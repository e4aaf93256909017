"""The recsys notebooks at smoke scale (tiny synthetic data): records exist, are finite, claims are present."""

import math

import pytest

METRICS = ("HR@10", "NDCG@10", "Recall@20", "MRR@100")


def finite_unit(records, prefix):
    values = {k: v for k, v in records.items() if k.startswith(prefix)}
    assert values, f"no records starting with {prefix!r}"
    for k, v in values.items():
        assert isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0, (k, v)
    return values


def claim_names(claims):
    for c in claims:
        assert isinstance(c["held"], bool) and c["statement"] and c["numbers"]
    return {c["name"] for c in claims}


def test_warm_vs_cold_start(run_notebook):
    records, claims = run_notebook("recsys/01_warm_vs_cold_start.ipynb")
    for metric in METRICS:
        for model in ("random", "popularity", "MF", "hybrid", "content-only"):
            finite_unit(records, f"{metric} item-cold/cold/{model}")
            finite_unit(records, f"{metric} warm/warm/{model}")
    assert records["HR@10 item-cold/cold/popularity"] == 0.0  # cold items have no counts
    assert claim_names(claims) == {"mf_cold_near_baseline", "hybrid_warm_close_cold_better"}


def test_contrastive_feature_fusion(run_notebook):
    records, claims = run_notebook("recsys/02_contrastive_feature_fusion.ipynb")
    for split in ("item-cold", "user-cold"):
        for model in ("MF", "hybrid", "content-only", "contrastive", "no contrastive loss", "no gating"):
            finite_unit(records, f"HR@10 {split}/cold/{model}")
    gates = finite_unit(records, "gate item-cold/item/")
    assert sum(gates.values()) == pytest.approx(1.0, abs=1e-4)
    finite_unit(records, "lr sweep HR@10 cold")
    assert claim_names(claims) == {"contrastive_beats_hybrid_cold_items", "ablation_no_contrastive_costs",
                                   "ablation_no_gating_costs"}


def test_aligning_cf_with_text(run_notebook):
    records, claims = run_notebook("recsys/03_aligning_cf_with_text.ipynb")
    for group in ("warm", "cold"):
        for model in ("CF-only", "text-only", "aligned (A-LLMRec stage 1)"):
            finite_unit(records, f"sampled Hit@1 {group}/{model}")
            finite_unit(records, f"HR@10 {group}/{model}")
    ranks = [records[f"critique mean rank turn {t}"] for t in range(6)]
    assert all(r >= 1 for r in ranks)
    assert claim_names(claims) == {"aligned_beats_cf_on_cold", "aligned_keeps_warm_accuracy",
                                   "critiquing_raises_target_rank"}
