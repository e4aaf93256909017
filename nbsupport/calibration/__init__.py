"""Calibration and temperature (papers and equations: docs/bibliography.md, calibration).

- :mod:`~nbsupport.calibration.metrics`: ``ece`` (equal width / equal mass; l1, l2, max),
  ``classwise_ece``, ``nll``, ``brier``, ``accuracy``, ``reliability``, from probabilities or logits;
- :mod:`~nbsupport.calibration.scaling`: ``fit_temperature`` and the calibrators
  ``TemperatureScaling``, ``VectorScaling``, ``HistogramBinning``, ``IsotonicCalibration``;
- :mod:`~nbsupport.calibration.mixup`: ``mixup``, ``train_classifier`` (ERM or Mixup), ``predict_logits``;
- :mod:`~nbsupport.calibration.tempnet`: ``TempNet`` and its DRO loss ``dro_loss``;
- :mod:`~nbsupport.calibration.sampling`: ``temperature_probs``, ``upweights``, ``mixture``, ``cooldown``,
  ``domain_batches`` for imbalanced multi-domain training;
- :mod:`~nbsupport.calibration.synthetic`: ``gaussian_classes`` (controlled overlap), ``noisy_labels``;
- :mod:`~nbsupport.calibration.plots`: ``reliability_figure``.

The one-pass logits kernel behind ``ece(..., from_logits=True)``, ``nll`` and ``fit_temperature``
is :mod:`nbsupport.kernels.calibration_stats`.
"""

from nbsupport.calibration.metrics import (
    accuracy,
    brier,
    classwise_ece,
    ece,
    error_from_histogram,
    histogram,
    mass_edges,
    nll,
    reliability,
)
from nbsupport.calibration.mixup import minibatches, mixup, predict_logits, train_classifier
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
from nbsupport.calibration.synthetic import gaussian_classes, noisy_labels
from nbsupport.calibration.tempnet import TempNet, dro_loss

__all__ = [
    "HistogramBinning", "IsotonicCalibration", "TempNet", "TemperatureScaling", "VectorScaling",
    "accuracy", "brier", "classwise_ece", "cooldown", "domain_batches", "dro_loss", "ece",
    "error_from_histogram", "fit_temperature", "gaussian_classes", "histogram", "mass_edges", "minibatches", "mixture", "mixup", "nll", "noisy_labels", "predict_logits",
    "reliability", "reliability_figure", "temperature_probs", "train_classifier", "upweights",
]
