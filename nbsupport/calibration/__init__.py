"""Calibration and temperature (papers and equations: docs/bibliography.md, calibration).

- :mod:`~nbsupport.calibration.metrics`: ``ece`` (equal width / equal mass; l1, l2, max),
  ``classwise_ece``, ``nll``, ``brier``, per-example ``ece_contributions`` and ``nll_per_example``, ``accuracy``, ``reliability``, from probabilities or logits;
- :mod:`~nbsupport.calibration.scaling`: ``fit_temperature`` and the calibrators
  ``TemperatureScaling``, ``VectorScaling``, ``HistogramBinning``, ``IsotonicCalibration``;
- :mod:`~nbsupport.calibration.mixup`: ``mixup``, ``train_classifier`` (ERM or Mixup), ``predict_logits``;
- :mod:`~nbsupport.calibration.tempnet`: ``TempNet``, its DRO loss ``dro_loss``, ``fit_tempnet``,
  ``tempered_entropy``;
- :mod:`~nbsupport.calibration.domains`: ``train_domains`` (sampling / upweighting / cooldown on the
  shared loop), ``weighted_sampler``, ``weighted_batches``, ``weighted_cross_entropy``, ``gradient_variance``;
- :mod:`~nbsupport.calibration.sampling`: ``temperature_probs``, ``upweights``, ``mixture``, ``cooldown``,
  ``domain_batches`` for imbalanced multi-domain training;
- :mod:`~nbsupport.calibration.synthetic`: ``gaussian_classes`` (controlled overlap), ``bayes_accuracy``,
  ``sigma_for_bayes_accuracy``, ``noisy_labels``;
- :mod:`~nbsupport.calibration.plots`: ``reliability_figure``.

The one-pass logits kernel behind ``ece(..., from_logits=True)``, ``nll`` and ``fit_temperature``
is :mod:`nbsupport.kernels.calibration_stats`.
"""

from nbsupport.calibration.domains import (
    gradient_variance,
    train_domains,
    weighted_batches,
    weighted_cross_entropy,
    weighted_sampler,
)
from nbsupport.calibration.metrics import (
    accuracy,
    brier,
    classwise_ece,
    ece,
    ece_contributions,
    error_from_histogram,
    histogram,
    mass_edges,
    nll,
    nll_per_example,
    reliability,
)
from nbsupport.calibration.mixup import mixup, predict_logits, train_classifier
from nbsupport.calibration.plots import reliability_figure
from nbsupport.calibration.sampling import (
    cooldown,
    domain_batches,
    mixture,
    temperature_probs,
    upweights,
)
from nbsupport.calibration.scaling import (
    HistogramBinning,
    IsotonicCalibration,
    TemperatureScaling,
    VectorScaling,
    fit_temperature,
)
from nbsupport.calibration.synthetic import (
    bayes_accuracy,
    gaussian_classes,
    noisy_labels,
    sigma_for_bayes_accuracy,
)
from nbsupport.calibration.tempnet import TempNet, dro_loss, fit_tempnet, tempered_entropy

__all__ = [
    "HistogramBinning", "IsotonicCalibration", "TempNet", "TemperatureScaling", "VectorScaling",
    "accuracy", "bayes_accuracy", "brier", "classwise_ece", "cooldown", "domain_batches", "dro_loss", "ece",
    "ece_contributions", "error_from_histogram", "fit_temperature", "fit_tempnet", "gaussian_classes",
    "gradient_variance", "histogram", "mass_edges", "mixture", "mixup", "nll", "nll_per_example",
    "noisy_labels", "predict_logits", "reliability", "reliability_figure", "sigma_for_bayes_accuracy",
    "tempered_entropy", "temperature_probs", "train_classifier", "train_domains", "upweights",
    "weighted_batches", "weighted_cross_entropy", "weighted_sampler",
]
