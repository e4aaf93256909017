"""The calibration notebooks at smoke scale: they run, record sane numbers, and state every claim."""


from checks import claims_present, finite


def test_reliability_and_temperature_scaling(run_notebook):
    rec, claims = run_notebook("calibration/01_reliability_and_temperature_scaling.ipynb")
    seeds = rec["seeds"]
    assert seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    claims_present(claims, ["overconfident_mlp", "overconfident_cnn", "ts_lowers_nll_mlp", "ts_lowers_nll_cnn",
                            "ts_lowers_ece_mlp", "ts_lowers_ece_cnn", "ece_grows_with_width",
                            "weight_decay_lowers_ece", "nll_overfits", "accuracy_does_not_overfit"])
    by_name = {c["name"]: c for c in claims}
    for model in ("mlp", "cnn"):
        assert all(0.05 <= t <= 20 for t in rec[f"{model}_temperatures"])
        assert 0 <= rec[f"{model}_train_accuracy"] <= 1
        for stage in ("raw", "ts"):
            for data in ("MNIST", "digits"):
                assert 0 <= rec[f"{model}_ece_{stage}"][data] <= 1
                assert 0 <= rec[f"{model}_accuracy_{stage}"][data] <= 1
                assert rec[f"{model}_nll_{stage}"][data] > 0
        # temperature scaling never changes a prediction
        assert rec[f"{model}_accuracy_ts"] == rec[f"{model}_accuracy_raw"]
        # judged over seeds: one row per seed of its held-out examples, MNIST (2000) and digits (900)
        for kind in ("overconfident", "ts_lowers_nll", "ts_lowers_ece"):
            c = by_name[f"{kind}_{model}"]
            assert (c["n"], c["over"], c["unit"], c["units_per_seed"]) == (len(seeds), "seeds", "example", 2900), c
        # at smoke scale the models do not fit their training sets: overconfidence is not judged
        assert by_name[f"overconfident_{model}"]["verdict"] == "not judged"
    for name in ("nll_overfits", "accuracy_does_not_overfit"):
        c = by_name[name]
        assert (c["n"], c["over"], c["unit"], c["units_per_seed"]) == (len(seeds), "seeds", "example", 2000), c
    for name in ("ece_grows_with_width", "weight_decay_lowers_ece"):
        assert by_name[name]["unit"] == "seed" and by_name[name]["n"] == len(seeds)
    # every directional claim has its smallest effect of interest (the non-inferiority claim says why it has none)
    assert all(c["margin"] > 0 or c["sign_only"] for c in claims)
    assert by_name["accuracy_does_not_overfit"]["sign_only"] and by_name["ts_lowers_nll_mlp"]["margin"] == 0.01
    methods = rec["methods"]
    assert set(methods["method"]) == {"uncalibrated", "temperature", "vector", "histogram binning", "isotonic"}
    assert finite(methods["ECE"]) and all(0 <= v <= 1 for v in methods["ECE"])
    assert all(0 <= v <= 2 for v in methods["Brier"])
    assert finite(rec["ece_vs_bins"]) and len(rec["ece_vs_bins"]["bins"]) == 8
    assert len(rec["nll_curves"][0]) == len(rec["error_curves"][0]) >= 2


def test_overlap_limits_and_mixup(run_notebook):
    rec, claims = run_notebook("calibration/02_overlap_limits_and_mixup.ipynb")
    claims_present(claims, ["erm_ts_degrades_with_overlap", "mixup_better_at_high_overlap",
                            "mixup_better_with_label_noise", "erm_ts_degrades_with_classes"])
    g = rec["gaussian_results"]
    assert set(g["method"]) == {"ERM", "Mixup"} and set(g["sweep"]) == {"overlap", "classes"}
    assert finite(g["ece_ts"]) and all(0 <= v <= 1 for v in g["ece_ts"] + g["ece_raw"] + g["bayes_ece"])
    assert all(0.05 <= t <= 20 for t in g["temperature"])
    assert all(0 <= a <= 1 for a in g["bayes_accuracy"] + g["train_accuracy"])
    # the Bayes posterior is the best possible NLL up to sampling error
    assert all(e > -0.05 for e in g["excess_nll_ts"])
    assert len(rec["ece_ts_by_sigma"]["sigma"]) >= 2 and finite(rec["ece_ts_by_sigma"]["ERM"])
    m = rec["mnist_noise_results"]
    assert set(m["method"]) == {"ERM", "Mixup"} and finite(m["ece_ts"])
    for c in claims:  # at smoke scale ERM does not fit its training set
        assert c["verdict"] == "not judged" and c["unit"] == "seed" and c["n"] == len(rec["seeds"])
        assert c["margin"] == 0.005 and [p["op"] for p in c["premises"]] == [">="]  # ERM memorizes, with numbers


def test_temperature_in_training(run_notebook):
    rec, claims = run_notebook("calibration/03_temperature_in_training.ipynb")
    claims_present(claims, ["tempnet_equalizes_entropy", "tempnet_beats_global_nll", "tempnet_beats_global_ece",
                            "sampling_faster_early", "sampling_overfits_small_domain", "upweighting_noisier_gradients",
                            "cooldown_beats_sampling_final", "cooldown_beats_upweighting_final"])
    seeds = rec["seeds"]  # one base GPT, TempNet and global temperature per seed
    for key in ("tempnet_tau_determined", "tempnet_tau_ambiguous"):
        assert len(rec[key]) == len(seeds) and all(0.05 <= v <= 5.0 for v in rec[key])
    assert all(-1 <= v <= 1 for v in rec["tempnet_entropy_spearman"])
    assert all(0.05 <= t <= 20 for t in rec["tempnet_global_temperature"])
    assert len(set(rec["tempnet_global_temperature"])) == len(seeds)  # each seed fits its own
    # the global temperature is fitted by NLL on the training pool, so it cannot be far worse than tau = 1
    nll = rec["tempnet_val_nll"]
    assert all(g < t * 1.2 for g, t in zip(nll["global"], nll["tau=1"], strict=True))
    for method in ("upweight", "sample", "cooldown"):
        assert all(0 < v < 10 for v in rec[f"{method}_early_balanced_loss"])
        assert all(b <= f for b, f in zip(rec[f"{method}_best_small_val_loss"], rec[f"{method}_final_small_val_loss"]))
    assert all(v > 0 for v in rec["gradient_variance"]["sample"] + rec["gradient_variance"]["upweight"])
    h = rec["histories"]
    assert set(h) == {"upweight", "sample", "cooldown", "cooldown + reweighting"} and finite(h)
    by_name = {c["name"]: c for c in claims}
    for name in ("tempnet_equalizes_entropy", "tempnet_beats_global_nll", "tempnet_beats_global_ece"):
        c = by_name[name]  # seeds x tokens: 2 pool batches of 32 windows of 32 characters at smoke
        assert (c["n"], c["over"], c["unit"], c["units_per_seed"]) == (len(seeds), "seeds", "token", 2 * 32 * 32), c
    assert by_name["sampling_faster_early"]["unit"] == "seed" and by_name["sampling_faster_early"]["n"] == len(seeds)
    assert all(c["margin"] > 0 for c in claims)
    assert by_name["upweighting_noisier_gradients"]["margin"] == 0.095
