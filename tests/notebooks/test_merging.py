"""The merging notebooks at smoke scale: they run, record finite numbers, and state every claim."""


from checks import claims_present, finite


def test_model_soups(run_notebook):
    rec, claims = run_notebook("merging/01_model_soups.ipynb")
    claims_present(claims, ["greedy_soup_beats_best_ingredient", "bad_ingredients_hurt_uniform_soup",
                            "no_barrier_from_one_base", "barrier_between_random_inits"])
    soups = rec["soup_test_acc"]
    assert set(soups) == {"best ingredient", "uniform soup", "uniform soup without the highest LR", "greedy soup"}
    assert all(0 <= v <= 1 for v in soups.values())
    assert len(rec["ingredients"]) >= 6 and finite(rec["ingredients"])
    assert all(v >= 0 for v in rec["loss_barrier"].values())  # the endpoints bound the barrier from below
    paths = rec["loss_paths"]
    assert finite(paths) and len({len(v) for v in paths.values()}) == 1


def test_task_vectors_and_interference(run_notebook):
    rec, claims = run_notebook("merging/02_task_vectors_and_interference.ipynb")
    claims_present(claims, ["ties_beats_task_arithmetic", "pcb_beats_task_arithmetic", "sign_conflicts_grow",
                            "dare_rescaled_survives_p09", "dare_unrescaled_fails_p09", "strong_base_merges_better"])
    norm = rec["normalized_acc"]
    assert {"task arithmetic", "TIES", "PCB", "Fisher", "Model Stock", "Breadcrumbs"} <= set(norm)
    assert finite(norm) and all(0 <= v <= 2 for r in norm.values() for v in r.values())
    for r in rec["sign_conflicts"].values():
        assert all(0 <= v <= 1 for v in r.values())
    assert set(rec["dare_normalized_acc"]) == {"rescale 1/(1-p)", "L1 rescale (mergekit)", "no rescale"}
    assert finite(rec["ties_fixed_norm_acc"]) and finite(rec["weak_base_norm_acc"])


def test_fisher_and_layer_swapping(run_notebook):
    rec, claims = run_notebook("merging/03_fisher_and_layer_swapping.ipynb")
    claims_present(claims, ["fisher_beats_average", "layer_swap_beats_average", "layer_swap_beats_experts"])
    acc = rec["normalized_acc_test"]
    assert {"average", "Fisher", "best layer swap"} <= set(acc) and finite(acc)
    # the swap with nothing from the donor is the host expert itself: its own task is at 1.0
    assert finite(rec["swap_val"]) and len(rec["swap_val"]) == 2 * 10
    assert all(0 <= v <= 1 for v in rec["fisher_mass_share_A"].values())
