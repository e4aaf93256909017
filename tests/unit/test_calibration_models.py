"""Models and helpers of the calibration notebooks: shapes, data generators, the training helper."""

import numpy as np
import pytest
import torch

from nbsupport import calibration as cal
from nbsupport.models.char_lm import CharMLP
from nbsupport.models.mlp_cnn import CNN, MLP


def test_model_shapes():
    x = torch.rand(5, 784)
    assert MLP(784, 10, hidden=16, depth=3)(x).shape == (5, 10)
    assert CNN(10, channels=4, hidden=8)(x).shape == (5, 10)
    assert CNN(10, channels=4, hidden=8)(x.reshape(5, 1, 28, 28)).shape == (5, 10)
    assert CharMLP(30, context=6)(torch.randint(0, 30, (4, 6))).shape == (4, 30)
    with pytest.raises(ValueError):
        CharMLP(30, context=6)(torch.randint(0, 30, (4, 5)))
    with pytest.raises(ValueError):
        MLP(4, 2, depth=0)


def test_gaussian_classes_posterior_is_bayes():
    g = torch.Generator().manual_seed(0)
    X, y, post = cal.gaussian_classes(20000, 3, 5, 0.7, g)
    assert X.shape == (20000, 5) and post.shape == (20000, 3)
    # class means are the standard basis vectors
    for k in range(3):
        assert torch.allclose(X[y == k].mean(0)[:3], torch.eye(3)[k], atol=0.05)
    # the posterior is calibrated: drawn labels match its top-label confidence
    assert cal.ece(post, y) < 0.02
    # and equals Bayes' rule with the Gaussian densities
    d2 = ((X.double()[:, None, :] - torch.eye(3, 5, dtype=torch.float64)) ** 2).sum(-1)
    assert torch.allclose(post, torch.softmax(-d2 / (2 * 0.7**2), 1), atol=1e-5)
    with pytest.raises(ValueError):
        cal.gaussian_classes(10, 5, 3, 1.0, g)


def test_noisy_labels_rate_and_never_same_when_flipped():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (50000,), generator=g)
    yn = cal.noisy_labels(y, 0.3, 10, g)
    assert 0.28 < float((yn != y).double().mean()) < 0.32
    assert yn.min() >= 0 and yn.max() < 10
    assert torch.equal(cal.noisy_labels(y, 0.0, 10, g), y)
    with pytest.raises(ValueError):
        cal.noisy_labels(y, 1.5, 10, g)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_train_classifier_learns_and_predict_logits(alpha):
    g = torch.Generator().manual_seed(0)
    X, y, _ = cal.gaussian_classes(400, 3, 4, 0.3, g)
    model = MLP(4, 3, hidden=32)
    log = cal.train_classifier(model, X, y, steps=150, batch=64, lr=1e-2, mixup_alpha=alpha, progress=False)
    assert len(log) == 150 and np.isfinite(log["loss"]).all()
    z = cal.predict_logits(model, X, batch=50)
    assert z.shape == (400, 3) and model.training
    assert cal.accuracy(z, y) > 0.9


def test_reliability_figure_has_diagonal_and_one_trace_per_table():
    z = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 4, (300,))
    fig = cal.reliability_figure({"a": cal.reliability(z, y, from_logits=True),
                                  "b": cal.reliability(z, y, 5, from_logits=True)})
    assert [t.name for t in fig.data] == ["perfect calibration", "a", "b"]


def test_bayes_accuracy_matches_monte_carlo_and_inverts():
    g = torch.Generator().manual_seed(0)
    for classes, sigma in [(2, 0.5), (4, 0.6), (16, 0.4)]:
        _, y, post = cal.gaussian_classes(200_000, classes, classes, sigma, g)
        mc = cal.accuracy(post, y)
        assert abs(cal.bayes_accuracy(classes, sigma) - mc) < 4e-3
        s = cal.sigma_for_bayes_accuracy(classes, 0.7)
        assert abs(cal.bayes_accuracy(classes, s) - 0.7) < 1e-9
    # two classes: closed form Φ(1 / (σ√2)) (the means are √2 apart)
    from scipy.stats import norm
    assert abs(cal.bayes_accuracy(2, 0.8) - norm.cdf(1 / (0.8 * np.sqrt(2)))) < 1e-9
    with pytest.raises(ValueError, match="between chance"):
        cal.sigma_for_bayes_accuracy(4, 0.2)
