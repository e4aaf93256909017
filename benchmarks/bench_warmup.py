"""Warmup theme: (1) a whole 100 000-step schedule, nbsupport's vectorized multipliers against
stepping transformers' LambdaLR and torch's CosineAnnealingWarmRestarts one step at a time
(how a training loop uses them); (2) one training step of the tiny GPT (d=128, 2 layers,
context 128, batch 32) with the z-loss cross-entropy through its reference and CPU fast path,
with and without qk-layernorm."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from harness import devices, run_cases

STEPS = 100_000


def make_schedule(impl: str):
    from nbsupport import schedules

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    steps = np.arange(STEPS)

    def step_through(factory):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sched = factory()
                for _ in range(STEPS):
                    sched.step()
        return run

    if impl == "nbsupport wsd, vectorized":
        s = schedules.wsd(1000, STEPS, decay=0.1, shape="1-sqrt")
        return lambda: s(steps)
    if impl == "nbsupport wsd, LambdaLR":
        s = schedules.wsd(1000, STEPS, decay=0.1, shape="1-sqrt")
        return step_through(lambda: s.lambda_lr(opt))
    if impl == "transformers get_wsd_schedule, LambdaLR":
        from transformers import get_wsd_schedule

        return step_through(lambda: get_wsd_schedule(opt, 1000, STEPS // 10, num_training_steps=STEPS,
                                                     decay_type="1-sqrt"))
    if impl == "nbsupport restarts, vectorized":
        s = schedules.restarts(1000, 2)
        return lambda: s(steps)
    if impl == "torch CosineAnnealingWarmRestarts":
        return step_through(lambda: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, 1000, 2))
    raise ValueError(impl)


def make_gpt(impl: str, qk_norm: bool = False, device: str = "cpu"):
    from nbsupport.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab=84, block=128, d=128, layers=2, heads=4, qk_norm=qk_norm, z_loss=1e-4,
                          impl=impl)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 84, (32, 128), device=device)
    y = torch.randint(0, 84, (32, 128), device=device)

    def step():
        loss, _ = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    cases = [{"case": f"schedule, {STEPS} steps", "impl": i, "make": "make_schedule", "params": {"impl": i}}
             for i in ("transformers get_wsd_schedule, LambdaLR", "nbsupport wsd, LambdaLR",
                       "nbsupport wsd, vectorized")]
    cases += [{"case": f"SGDR, {STEPS} steps", "impl": i, "make": "make_schedule", "params": {"impl": i}}
              for i in ("torch CosineAnnealingWarmRestarts", "nbsupport restarts, vectorized")]
    for dev in devices():
        for qk in (False, True):
            cases += [{"case": f"GPT train step {dev}" + (" qk-norm" if qk else ""), "impl": i, "make": "make_gpt",
                       "params": {"impl": i, "qk_norm": qk, "device": dev}} for i in ("reference", "fast")]
    run_cases("warmup", __file__, cases, repeat=5)


if __name__ == "__main__":
    main()
