"""The first loop, ``nbsupport.train.legacy.train``, kept while merging still uses it: this file
goes with it (every other caller is on :func:`nbsupport.train.fit`, tested in test_train.py)."""

import pytest
import torch

from nbsupport import seed_everything
from nbsupport.train.legacy import train


def test_train_fits_linear_regression_and_logs():
    seed_everything(0)
    w = torch.tensor([[2.0, -1.0]])
    x = torch.randn(256, 2)
    data = [(x[i : i + 32], x[i : i + 32] @ w.T) for i in range(0, 256, 32)]
    model = torch.nn.Linear(2, 1)
    seen = []
    log = train(model, data, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]),
                torch.optim.SGD(model.parameters(), lr=0.1), 200,
                eval_fn=lambda m: {"w0": float(m.weight[0, 0])}, eval_every=50,
                callbacks=[lambda step, row: seen.append(step)], progress=False)
    assert len(log) == 200 and seen == list(range(1, 201))
    assert log["loss"].iloc[-1] < 1e-4
    assert log["w0"].dropna().iloc[-1] == pytest.approx(2.0, abs=1e-2)
    assert list(log["step"][log["w0"].notna()]) == [50, 100, 150, 200]


def test_train_stops_on_divergence():
    model = torch.nn.Linear(1, 1)
    log = train(model, [torch.ones(1, 1)], lambda m, b: m(b).sum() * float("nan"),
                torch.optim.SGD(model.parameters(), lr=0.1), 10, progress=False)
    assert len(log) == 1 and bool(log["diverged"].iloc[0])
    with pytest.raises(ValueError):
        train(model, [], lambda m, b: m(b).sum(), torch.optim.SGD(model.parameters(), lr=0.1), 3, progress=False)


def _square_plus_threads(seed):
    import torch

    return seed * seed, torch.get_num_threads()


def test_run_seeds_parallel_equals_sequential_and_uses_one_thread():
    import torch

    from nbsupport.train import run_seeds

    torch.ones(64, 64) @ torch.ones(64, 64)  # the parent has used its intra-op threads
    par = run_seeds(_square_plus_threads, [0, 1, 2, 3], workers=2)
    assert [r[0] for r in par] == [0, 1, 4, 9] and all(r[1] == 1 for r in par)
    seq = run_seeds(lambda s: s * s, [0, 1, 2], workers=1)
    assert seq == [0, 1, 4]
    assert run_seeds(lambda s: s + 1, [2, 3], workers=2) == [3, 4]  # defined at run time: fork
    with pytest.raises(ValueError, match="seeds"):
        run_seeds(lambda s: s, [0, True])
