"""``nbsupport.train.fit`` over seeds: wall time of one seed against several seeds trained in
parallel worker processes, batched under ``vmap`` and one after another, for each model family
the notebooks train (char GPT, MLP, CNN, S4D, BPR matrix factorization, a MiniLM-sized head on
384-d features), on a quiet machine and beside a competing busy process (a CPU-burning
subprocess started for the case). On CUDA: 5 seeds batched and in turn against one seed.

Goals: on 2 CPU cores 3 seeds <= 2.2x one seed; no arm more than 1.3x slower beside a busy
process than quiet; on CUDA 5 seeds batched <= 1.5x one seed. The ratios are appended to
``results/training.md``. ``BENCH_TRAINING_FAMILIES=gpt,mlp`` runs a subset; ``BENCH_TRAINING_REPEAT``
timed calls per case after the warm-up (default 2).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from typing import Any

import torch
from harness import RESULTS, devices, run_cases
from torch.nn import functional as F

FAMILIES = ("gpt", "mlp", "cnn", "s4d", "mf", "minilm_head")
# Steps per seed: 0.6-4 s of training on one core, as a seed of a notebook at standard scale (much shorter
# runs measure the cost of forking workers rather than training).
STEPS = {"gpt": 240, "mlp": 400, "cnn": 160, "s4d": 120, "mf": 500, "minilm_head": 600}
CPU_ARMS = {"1 seed": dict(seeds=[0], workers=1), "3 seeds parallel": dict(seeds=[0, 1, 2], workers=None),
            "3 seeds batched": dict(seeds=[0, 1, 2], batched=True),
            "3 seeds sequential": dict(seeds=[0, 1, 2], workers=1)}
CUDA_ARMS = {"1 seed": dict(seeds=[0]), "5 seeds batched": dict(seeds=list(range(5)), batched=True),
             "5 seeds sequential": dict(seeds=list(range(5)), batched=False)}


def _busy() -> None:
    """A competing process burning one core until this one exits (it checks, so it cannot outlive us)."""
    burn = f"import os\nwhile os.getppid() == {os.getpid()}: pass"
    proc = subprocess.Popen([sys.executable, "-c", burn])
    atexit.register(proc.kill)


def _ce(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def family(name: str) -> tuple[Any, Any, dict[str, Any]]:
    """(model factory, data, fit keywords) for one family, with the notebooks' standard sizes."""
    g = torch.Generator().manual_seed(0)
    if name == "gpt":
        from nbsupport.models.gpt import GPT

        text = torch.randint(65, (100_000,), generator=g)
        offsets = torch.arange(64)

        def windows(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            start = torch.randint(0, len(text) - 65, (16, 1), generator=gen)
            return text[start + offsets], text[start + offsets + 1]

        return lambda s: GPT(vocab=65, block=64, d=64, layers=2, heads=4), windows, dict(loss=_ce, lr=3e-3)
    if name == "mlp":
        from nbsupport.models.mlp_cnn import MLP

        X, y = torch.randn(4000, 784, generator=g), torch.randint(10, (4000,), generator=g)
        return lambda s: MLP(784, 10, hidden=256, depth=2), (X, y), dict(batch_size=128)
    if name == "cnn":
        from nbsupport.models.mlp_cnn import CNN

        X, y = torch.randn(2000, 784, generator=g), torch.randint(10, (2000,), generator=g)
        return lambda s: CNN(10, channels=16, hidden=128), (X, y), dict(batch_size=64)
    if name == "s4d":
        from nbsupport.models.s4d import S4DModel
        from nbsupport.ssm.init import s4d_init

        X, y = torch.randn(512, 512, 1, generator=g), torch.randint(10, (512,), generator=g)
        A = s4d_init("lin", 16)
        return (lambda s: S4DModel(1, 10, d_model=32, n_layers=1, A_init=A, pool="mean"), (X, y),
                dict(batch_size=16, lr=3e-3))
    if name == "mf":
        from nbsupport import recsys
        from nbsupport.recsys.models import Hybrid

        data = recsys.synthetic(n_users=900, n_items=1600, per_user=40, seed=0)
        u = torch.tensor(data.ratings.user_id.to_numpy())
        i = torch.tensor(data.ratings.item_id.to_numpy())
        j = torch.randint(data.n_items, (len(u),), generator=g)
        return (lambda s: Hybrid.mf(data, dim=64), (u, i, j),
                dict(batch_size=1024, lr=1e-2, loss=lambda m, b: m.loss(b)))
    if name == "minilm_head":
        X, y = torch.randn(5000, 384, generator=g), torch.randint(4, (5000,), generator=g)
        head = lambda s: torch.nn.Sequential(torch.nn.Linear(384, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4))  # noqa: E731
        return head, (X, y), dict(batch_size=64)
    raise ValueError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}")


def make(family_name: str, arm: str, busy: bool = False, device: str = "cpu"):
    from nbsupport.train import fit

    factory, data, kw = family(family_name)
    arm_kw = (CUDA_ARMS if device == "cuda" else CPU_ARMS)[arm]
    if busy:
        _busy()
    return lambda: fit(factory, data, steps=STEPS[family_name], device=device, progress=False, **kw, **arm_kw)


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each arm's time over one seed's (same family, device and load) and busy over quiet."""
    t = {(r["params"]["family_name"], r["params"]["device"], r["params"]["arm"], r["params"]["busy"]): r["seconds"]
         for r in rows if "seconds" in r}
    out = []
    for (fam, dev, arm, busy), sec in t.items():
        one = t.get((fam, dev, "1 seed", busy))
        quiet = t.get((fam, dev, arm, False))
        out.append({"family": fam, "device": dev, "arm": arm, "busy": busy, "seconds": sec,
                    "x_one_seed": sec / one if one else None, "busy_over_quiet": sec / quiet if busy and quiet else None})
    return out


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def main() -> None:
    families = [f for f in os.environ.get("BENCH_TRAINING_FAMILIES", ",".join(FAMILIES)).split(",") if f]
    cases = []
    for dev in devices():
        arms, loads = (CUDA_ARMS, (False,)) if dev == "cuda" else (CPU_ARMS, (False, True))
        for fam in families:
            for busy in loads:
                cases += [{"case": f"{fam} {dev}", "impl": f"{arm}{' + busy' if busy else ''}", "make": "make",
                           "params": {"family_name": fam, "arm": arm, "busy": busy, "device": dev},
                           "repeat": int(os.environ.get("BENCH_TRAINING_REPEAT", "2"))}
                          for arm in arms]
    rows = run_cases("training", __file__, cases)
    ratios = summary(rows)
    (RESULTS / "training_ratios.json").write_text(json.dumps(ratios, indent=1))
    with open(RESULTS / "training.md", "a") as f:
        f.write("\nRatios: each arm's time over one seed's (same load), and beside a busy process over quiet:\n\n"
                "| family | device | arm | load | x one seed | busy / quiet |\n|---|---|---|---|---|---|\n")
        f.writelines(f"| {r['family']} | {r['device']} | {r['arm']} | {'busy' if r['busy'] else 'quiet'} | "
                     f"{_fmt(r['x_one_seed'])} | {_fmt(r['busy_over_quiet'])} |\n" for r in ratios)
    print(json.dumps(ratios, indent=1))


if __name__ == "__main__":
    main()
