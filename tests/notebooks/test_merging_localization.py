"""The skill-localization notebook at smoke scale: it runs, records finite numbers, states every claim."""

from checks import claims_present, finite, premise_counts


def test_skill_localization(run_notebook):
    rec, claims = run_notebook("merging/04_skill_localization.ipynb")
    claims_present(claims, ["graft_recovers_95pct", "learned_beats_magnitude", "graft_lowers_ece_40pct",
                            "task_regions_almost_disjoint", "overlap_tracks_similarity"])
    premise_counts(claims, {"graft_recovers_95pct": 1, "learned_beats_magnitude": 1, "graft_lowers_ece_40pct": 2,
                            "task_regions_almost_disjoint": 1, "overlap_tracks_similarity": 2})
    arms = {"pretrained", "fine-tuned", "magnitude", "learned"}
    assert set(rec["test_acc"]) == arms and set(rec["test_ece"]) == arms
    assert all(0 <= v <= 1 for a in arms for v in rec["test_acc"][a].values())
    assert all(0 <= v <= 1 for a in arms for v in rec["test_ece"][a].values())
    assert finite(rec["graft_ratio"]) and set(rec["graft_ratio"]) == {"magnitude", "learned"}
    assert len(rec["magnitude_sweep_acc"]) >= 3 and finite(rec["magnitude_sweep_acc"])
    for kind in ("learned", "magnitude"):
        assert len(rec["jaccard"][kind]) == 3 and all(0 <= v <= 1 for v in rec["jaccard"][kind].values())
    assert 0 < rec["jaccard_random_regions"] < 1 and 0 <= rec["learned_moved_from_start"] <= 1
    region = rec["region"]
    assert region["budget"] == max(1, round(region["density"] * region["parameters"]))
    # the premise is per task: the claims are judged over the tasks whose fine-tune is 0.1 above chance
    above, judged = rec["fine_tune_above_chance"], rec["tasks_judged"]
    assert sorted(judged["kept"]) == sorted(t for t, m in above.items() if m > 0.1)  # records sort dict keys
    assert sorted(judged["kept"] + judged["left out"]) == sorted(above) == sorted(rec["test_acc"]["fine-tuned"])
    first = {c["name"]: c["premises"][0] for c in claims}
    assert first["graft_recovers_95pct"]["value"] == len(judged["kept"])
    assert first["graft_recovers_95pct"]["ok"] == bool(judged["kept"])
