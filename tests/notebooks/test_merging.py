"""The merging notebooks at smoke scale: they run, record finite numbers, and state every claim."""


from checks import claims_present, finite, premise_counts


def test_model_soups(run_notebook):
    rec, claims = run_notebook("merging/01_model_soups.ipynb")
    claims_present(claims, ["greedy_soup_beats_best_ingredient", "greedy_soup_matches_ensemble",
                            "no_barrier_between_good_ingredients", "barrier_between_random_inits"])
    premise_counts(claims, {"no_barrier_between_good_ingredients": 1, "barrier_between_random_inits": 1})
    soups = rec["soup_test_acc"]
    assert set(soups) == {"best ingredient", "uniform soup", "uniform soup without the highest LR", "greedy soup",
                          "ensemble of the greedy soup's ingredients"}
    assert all(0 <= v <= 1 for v in soups.values())
    assert len(rec["ingredients"]) >= 6 and finite(rec["ingredients"])
    assert all(v >= 0 for v in rec["loss_barrier"].values())  # the endpoints bound the barrier from below
    paths = rec["loss_paths"]
    assert finite(paths) and len(paths) == 3 and len({len(v) for v in paths.values()}) == 1
    assert all(0 <= v <= 1 for v in rec["cnn_val_acc"].values())


def test_task_vectors_and_interference(run_notebook):
    rec, claims = run_notebook("merging/02_task_vectors_and_interference.ipynb")
    claims_present(claims, ["ties_beats_task_arithmetic", "ties_model_scope_beats_task_arithmetic",
                            "pcb_beats_task_arithmetic", "ties_loses_less_as_tasks_grow", "dare_rescaled_survives_p09",
                            "dare_rescale_needed_p09", "strong_base_merges_better", "merged_generalizes_to_held_out"])
    premise_counts(claims, {c["name"]: 5 if c["name"] == "strong_base_merges_better" else 2 for c in claims})
    norm, gain = rec["normalized_acc"], rec["gain_retained"]
    methods = {"task arithmetic", "TIES", "TIES, model-scope trim", "PCB", "Fisher", "Model Stock", "Breadcrumbs"}
    assert methods <= set(norm) and set(norm) == set(gain) and finite(norm) and finite(gain)
    assert all(0 <= v <= 2 for r in norm.values() for v in r.values())
    diagnostics = {"TIES, density 1 (election only)", "TIES without election (mean of trimmed)"}
    assert diagnostics <= set(rec["normalized_acc_all_tasks"]) and diagnostics <= set(rec["gain_retained_all_tasks"])
    edges = rec["lambda_at_grid_edge"]
    assert "Model Stock" not in edges and "Fisher" not in edges
    assert all(0 <= e["top"] <= 1 and 0 <= e["bottom"] <= 1 for e in edges.values())
    assert all(0 < v <= 1 for v in rec["top_norm_share"].values()) and 0 < rec["top_rebuilt_norm_acc"] <= 2
    for r in rec["sign_conflicts"].values():
        assert all(0 <= v <= 1 for v in r.values())
    assert set(rec["dare_normalized_acc"]) == {"rescale 1/(1-p)", "L1 rescale (mergekit)", "no rescale"}
    mt = rec["multitask_base"]
    assert finite([mt["gain retained"], mt["pretrained base gain retained"]])
    assert 0 <= mt["probe acc"] <= 1 and 0 <= mt["pretrained base probe acc"] <= 1
    held = rec["held_out_probe_acc"]
    assert len(held) == 2 and all(0 <= v <= 1 for r in held.values() for v in r.values())
    assert len({tuple(r) for r in held.values()}) == 1  # the same held-out tasks for both bodies
    assert finite(rec["ties_fixed_norm_acc"])


def test_fisher_and_layer_swapping(run_notebook):
    rec, claims = run_notebook("merging/03_fisher_and_layer_swapping.ipynb")
    claims_present(claims, ["fisher_beats_average", "layer_swap_beats_average", "layer_swap_beats_experts",
                            "layer_swap_composes", "larger_models_merge_better"])
    premise_counts(claims, {"fisher_beats_average": 2, "layer_swap_beats_average": 1, "layer_swap_beats_experts": 1,
                            "layer_swap_composes": 2, "larger_models_merge_better": 2})
    acc = rec["normalized_acc_test"]
    assert {"average", "Fisher", "best layer swap"} <= set(acc) and finite(acc)
    assert finite(rec["swap_val"]) and len(rec["swap_val"]) == 2 * 10
    assert all(0 <= v <= 1 for v in rec["fisher_mass_share_A"].values())
    assert 0 <= rec["fisher_at_floor"] <= 1
    assert all(len(v) == 3 and min(v) >= 0 for v in rec["task_vector_norm_per_layer"].values())
    comp = rec["composition_target_acc"]
    assert set(comp) == {"task expert", "language expert's body", "average", "best layer swap"}
    assert all(0 <= v <= 1 for v in comp.values()) and all(0 <= v <= 1 for v in rec["composition_own_acc"].values())
    assert all(len(v) == 3 for v in rec["composition_task_vector_norm_per_layer"].values())
    gains, params = rec["model_size_gain_retained"], rec["model_size_parameters"]
    assert set(gains) == set(params) and len(gains) >= 2 and finite(gains)
    assert [params[w] for w in sorted(params, key=int)] == sorted(params.values())  # wider is bigger
