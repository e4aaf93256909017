"""Cross-entropy with z-loss, forward + backward: reference vs CPU fast path vs Triton (CUDA),
beside eager ``torch.nn.functional.cross_entropy`` (no z-loss) as the peer baseline.
8192 tokens x 32k vocabulary, float32."""

from __future__ import annotations

import torch
from harness import devices, kernel_paths, run_cases

TOKENS, VOCAB, Z = 8192, 32_000, 1e-4


def make(impl: str, device: str = "cpu"):
    from nbsupport.kernels.cross_entropy import cross_entropy

    g = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(TOKENS, VOCAB, device=device, generator=g, requires_grad=True)
    target = torch.randint(0, VOCAB, (TOKENS,), device=device, generator=g)

    def step():
        logits.grad = None
        if impl == "torch F.cross_entropy (no z-loss)":
            loss = torch.nn.functional.cross_entropy(logits, target)
        else:
            loss, _ = cross_entropy(logits, target, z_loss=Z, impl=impl)
        loss.backward()

    return step


def main() -> None:
    cases = []
    for dev in devices():
        impls = [*kernel_paths(dev), "torch F.cross_entropy (no z-loss)"]
        cases += [{"case": f"{TOKENS}x{VOCAB} {dev}", "impl": i, "make": "make", "params": {"impl": i, "device": dev}}
                  for i in impls]
    run_cases("cross_entropy", __file__, cases, repeat=3)
