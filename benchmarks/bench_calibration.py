"""ECE from logits: our paths (``calibration_stats`` kernel: reference, CPU fast path, Triton on
CUDA) against torchmetrics' ``multiclass_calibration_error`` with the softmax on its side too.
1M samples x 100 classes and 100k x 1000, float32, 15 equal-width bins, l1.

On CUDA it also times ``calibration_stats`` alone (no ``ece`` wrapper) for the reference and
Triton paths. ``python benchmarks/bench_calibration.py`` writes ``results/calibration.json`` / ``.md`` (time,
peak memory) and ``results/calibration_agreement.json``: each path's ECE beside torchmetrics'
and beside a float64 reference, with the largest differences.
"""

from __future__ import annotations

import json

import torch
from harness import RESULTS, devices, kernel_paths, run_cases

SHAPES = [(1_000_000, 100), (100_000, 1000)]
TORCHMETRICS = "torchmetrics (softmax + multiclass_calibration_error)"


def inputs(n: int, c: int, device: str = "cpu"):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, c, generator=g) * 3
    labels = torch.where(torch.rand(n, generator=g) < 0.7, logits.argmax(1), torch.randint(0, c, (n,), generator=g))
    return logits.to(device), labels.to(device)


def value(impl: str, logits: torch.Tensor, labels: torch.Tensor) -> float:
    if impl == TORCHMETRICS:
        from torchmetrics.functional.classification import multiclass_calibration_error

        probs = torch.softmax(logits, dim=1)
        return float(multiclass_calibration_error(probs, labels, num_classes=logits.shape[1], n_bins=15, norm="l1"))
    from nbsupport.calibration import ece

    return ece(logits, labels, n_bins=15, from_logits=True, impl=impl)


def make(impl: str, n: int, c: int, device: str = "cpu", stats_only: bool = False):
    logits, labels = inputs(n, c, device)
    if stats_only:  # the kernel alone, without ece's checks and the final reduction
        from nbsupport.kernels.calibration_stats import calibration_stats

        return lambda: calibration_stats(logits, labels, impl=impl)
    return lambda: value(impl, logits, labels)


def agreement(devs: list[str]) -> list[dict]:
    rows = []
    for n, c in SHAPES:
        for dev in devs:
            logits, labels = inputs(n, c, dev)
            exact = value("reference", logits.double(), labels)
            theirs = value(TORCHMETRICS, logits, labels)
            for impl in kernel_paths(dev):
                ours = value(impl, logits, labels)
                rows.append({"case": f"{n}x{c} {dev}", "impl": impl, "ece": ours, "torchmetrics": theirs,
                             "float64_reference": exact, "diff_vs_torchmetrics": abs(ours - theirs),
                             "diff_vs_float64": abs(ours - exact), "torchmetrics_diff_vs_float64": abs(theirs - exact)})
                print(json.dumps(rows[-1]), flush=True)
            del logits, labels
    return rows


def main() -> None:
    devs = devices()
    cases = []
    for dev in devs:
        impls = [TORCHMETRICS, *kernel_paths(dev)]
        for n, c in SHAPES:
            case = {"case": f"{n}x{c} {dev}", "make": "make", "repeat": 20 if dev == "cuda" else 3}
            cases += [{**case, "impl": i, "params": {"impl": i, "n": n, "c": c, "device": dev}} for i in impls]
            if dev == "cuda":  # where the time goes: the kernel alone
                cases += [{**case, "impl": f"{i} (calibration_stats only)",
                           "params": {"impl": i, "n": n, "c": c, "device": dev, "stats_only": True}}
                          for i in ("reference", "triton")]
    run_cases("calibration", __file__, cases, repeat=3)
    rows = agreement(devs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration_agreement.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
