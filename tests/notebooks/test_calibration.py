"""The calibration notebooks at smoke scale: they run, record sane numbers, and state every claim."""


from checks import claims_present, finite


def test_reliability_and_temperature_scaling(run_notebook):
    rec, claims = run_notebook("calibration/01_reliability_and_temperature_scaling.ipynb")
    claims_present(claims, ["overconfident_mlp", "overconfident_cnn", "temperature_scaling_mlp",
                            "temperature_scaling_cnn"])
    for model in ("mlp", "cnn"):
        assert 0.05 <= rec[f"{model}_temperature"] <= 20
        for stage in ("raw", "ts"):
            assert 0 <= rec[f"{model}_ece_{stage}"] <= 1
            assert 0 <= rec[f"{model}_accuracy_{stage}"] <= 1
            assert rec[f"{model}_nll_{stage}"] > 0
        # temperature scaling never changes a prediction
        assert rec[f"{model}_accuracy_ts"] == rec[f"{model}_accuracy_raw"]
        # T minimizes the NLL on the calibration split, so it cannot be far worse on test
        assert rec[f"{model}_nll_ts"] < rec[f"{model}_nll_raw"] * 1.5
    methods = rec["methods"]
    assert set(methods["method"]) == {"uncalibrated", "temperature", "vector", "histogram binning", "isotonic"}
    assert finite(methods["ECE"]) and all(0 <= v <= 1 for v in methods["ECE"])
    assert all(0 <= v <= 2 for v in methods["Brier"])
    assert finite(rec["ece_vs_bins"]) and len(rec["ece_vs_bins"]["bins"]) == 8
    bias = rec["ece_bias_calibrated"]
    assert all(v > 0 for v in bias["15 bins"])  # estimator bias: a calibrated predictor scores above 0


def test_overlap_limits_and_mixup(run_notebook):
    rec, claims = run_notebook("calibration/02_overlap_limits_and_mixup.ipynb")
    claims_present(claims, ["erm_ts_degrades_with_overlap", "mixup_better_at_high_overlap",
                            "mixup_better_with_label_noise", "erm_ts_degrades_with_classes"])
    g = rec["gaussian_results"]
    assert set(g["method"]) == {"ERM", "Mixup"}
    assert finite(g["ece_ts"]) and all(0 <= v <= 1 for v in g["ece_ts"])
    assert all(0.05 <= t <= 20 for t in g["temperature"])
    assert all(0 <= a <= 1 for a in g["bayes_accuracy"])
    assert len(rec["ece_ts_by_sigma"]["sigma"]) >= 2 and finite(rec["ece_ts_by_sigma"]["ERM"])
    m = rec["mnist_noise_results"]
    assert set(m["method"]) == {"ERM", "Mixup"} and finite(m["ece_ts"])


def test_temperature_in_training(run_notebook):
    rec, claims = run_notebook("calibration/03_temperature_in_training.ipynb")
    claims_present(claims, ["tempnet_higher_tau_when_ambiguous", "sampling_faster_early",
                            "sampling_overfits_small_domain", "cooldown_fast_start_without_overfit"])
    for key in ("tempnet_tau_determined", "tempnet_tau_ambiguous"):
        assert 0.05 <= rec[key] <= 5.0
    assert -1 <= rec["tempnet_entropy_spearman"] <= 1
    for method in ("upweight", "sample", "cooldown"):
        assert 0 < rec[f"{method}_early_balanced_loss"] < 10
        assert rec[f"{method}_best_small_val_loss"] <= rec[f"{method}_final_small_val_loss"]
    h = rec["histories"]
    assert set(h) == {"upweight", "sample", "cooldown", "cooldown + reweighting"} and finite(h)
