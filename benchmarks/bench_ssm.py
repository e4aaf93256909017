"""S4D Vandermonde kernel ``s4d_kernel`` (forward): float32 reference (materializes H x N x L)
vs the blocked CPU fast path vs Triton (CUDA), H = 256 channels, N = 64 states, L = 1k, 4k, 16k.
Inputs: S4D-LegS eigenvalues times log-uniform dt in [1e-3, 1e-1], random complex C.
Also writes the fast paths' relative error to the float64 reference (``results/ssm_accuracy.json``)."""

from __future__ import annotations

import json

import torch
from harness import RESULTS, devices, kernel_paths, run_cases

H, N, LENGTHS = 256, 64, (1024, 4096, 16384)


def inputs(device: str = "cpu", dtype=torch.complex64):
    from nbsupport import ssm

    g = torch.Generator().manual_seed(0)
    A = ssm.s4d_init("legs", 2 * N, dtype=torch.complex128)
    dt = ssm.init_log_dt(H, 1e-3, 1e-1, g).double().exp()
    C = torch.randn(H, N, dtype=torch.complex128, generator=g)
    return (dt[:, None] * A).to(device=device, dtype=dtype), C.to(device=device, dtype=dtype)


def make(impl: str, L: int, device: str = "cpu"):
    from nbsupport.ssm import s4d_kernel

    dtA, C = inputs(device)
    return lambda: s4d_kernel(dtA, C, L, impl=impl)


def accuracy(devs: list[str]) -> list[dict]:
    from nbsupport.ssm import s4d_kernel

    rows = []
    for dev in devs:
        for L in LENGTHS:
            ref = s4d_kernel(*inputs("cpu", torch.complex128), L, impl="reference")
            for impl in kernel_paths(dev, reference=False):
                got = s4d_kernel(*inputs(dev), L, impl=impl).double().cpu()
                rel = float((got - ref).norm() / ref.norm())
                rows.append({"device": dev, "L": L, "impl": impl, "relative_error_vs_float64": rel})
            del ref
    return rows


def main() -> None:
    devs = devices()
    cases = []
    for dev in devs:
        impls = kernel_paths(dev)
        cases += [{"case": f"H={H} N={N} L={L} {dev}", "impl": i, "make": "make",
                   "params": {"impl": i, "L": L, "device": dev}, "repeat": 3 if L < 16384 else 2}
                  for L in LENGTHS for i in impls]
    run_cases("ssm", __file__, cases)
    rows = accuracy(devs)
    (RESULTS / "ssm_accuracy.json").write_text(json.dumps(rows, indent=1))
    with open(RESULTS / "ssm.md", "a") as f:
        f.write("\nRelative error (L2) of each fast path vs the float64 reference:\n\n| device | L | path | rel. error |\n"
                "|---|---|---|---|\n")
        f.writelines(f"| {r['device']} | {r['L']} | {r['impl']} | {r['relative_error_vs_float64']:.1e} |\n" for r in rows)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
