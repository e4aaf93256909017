"""Skill localization by grafting (Panigrahi et al. 2023, "Task-Specific Skill Localization in
Fine-tuned Language Models", ICML).

A *graft* keeps the pretrained weights everywhere except on a sparse region γ (a binary mask
over the parameters), where it takes the fine-tuned values (the paper's §3):

    θ_graft(γ) = θ_pre + γ ⊙ (θ_ft − θ_pre).

The region is *learned*: a relaxed mask, the top-s movement mask γ_base (the s entries whose
|θ_ft − θ_pre| is largest) with every entry's membership flipped with probability σ(S),

    γ(S) = γ_base + (1 − 2 γ_base) ⊙ σ(S),

is trained by minimizing the task loss of θ_pre + γ(S) ⊙ (θ_ft − θ_pre) over S on the
training data (Panigrahi et al. 2023, §3, as in the authors' code: S starts at
U[0, 1) − sigmoid_bias, so σ(S) ≈ 0 and γ(S) ≈ γ_base), then rounded back to a binary region
of the budget's size s: the s entries with the largest γ(S).

- :func:`movement`, :func:`graft`: θ_ft − θ_pre and the graft;
- :func:`top_movement_mask`: γ_base, over the whole model (not per tensor);
- :func:`learn_mask`: the optimized region, trained with :func:`nbsupport.train.fit`;
- :func:`mask_size`, :func:`jaccard`: the size of a region and the overlap of two regions.

Masks are state dicts of bool tensors with the keys and shapes of the states they select from.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

State = Mapping[str, torch.Tensor]


def _floats(state: State) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point()]


def _require_like(state: State, keys: Sequence[str], base: State, name: str, fix: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"the {name} lacks {missing[:3]}: {fix}")
    bad = [k for k in keys if state[k].shape != base[k].shape]
    if bad:
        raise ValueError(f"the {name}'s shapes differ from the base's at {bad[:3]}: {fix}")


def _check_pair(base: State, finetuned: State) -> list[str]:
    keys = _floats(base)
    _require_like(finetuned, keys, base, "fine-tuned state", "pass the fine-tune of this base")
    return keys


def _check_mask(mask: State, keys: Sequence[str], base: State) -> None:
    _require_like(mask, keys, base, "mask", "build it from the same states (e.g. top_movement_mask)")


def movement(base: State, finetuned: State) -> dict[str, torch.Tensor]:
    """θ_ft − θ_pre for every floating-point tensor (the direction the graft takes)."""
    return {k: finetuned[k].float() - base[k].float() for k in _check_pair(base, finetuned)}


def graft(base: State, finetuned: State, mask: State) -> dict[str, torch.Tensor]:
    """θ_pre + γ ⊙ (θ_ft − θ_pre) (Panigrahi et al. 2023, §3): the fine-tuned values where
    ``mask`` is true, the pretrained ones elsewhere; non-float entries are the base's."""
    keys = _check_pair(base, finetuned)
    _check_mask(mask, keys, base)
    out = {k: v.clone() for k, v in base.items()}
    for k in keys:
        out[k] = torch.where(mask[k].bool(), finetuned[k].to(base[k].dtype), base[k])
    return out


def _budget(size: int | None, density: float | None, total: int) -> int:
    if (size is None) == (density is None):
        raise ValueError("give the region's size as exactly one of size= (entries) or density= (fraction)")
    if density is not None:
        if not 0 < density <= 1:
            raise ValueError(f"density must be in (0, 1], got {density!r}")
        size = max(1, round(density * total))
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= total:
        raise ValueError(f"size must be an int in [1, {total}] (the number of float entries), got {size!r}")
    return size


def _top(scores: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """Bool masks of the ``size`` largest scores over all tensors together (ties: lowest flat index)."""
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.topk(flat, size, sorted=False).indices] = True
    out, start = {}, 0
    for k, s in scores.items():
        out[k] = keep[start:start + s.numel()].reshape(s.shape)
        start += s.numel()
    return out


def top_movement_mask(base: State, finetuned: State, *, size: int | None = None,
                      density: float | None = None) -> dict[str, torch.Tensor]:
    """γ_base: the ``size`` entries (or ``density`` of all float entries) with the largest
    |θ_ft − θ_pre|, chosen over the whole model (Panigrahi et al. 2023, §3: the
    "highest movement" initialization, and the magnitude-only baseline)."""
    tau = movement(base, finetuned)
    total = sum(v.numel() for v in tau.values())
    return _top({k: v.abs() for k, v in tau.items()}, _budget(size, density, total))


def mask_size(mask: State) -> int:
    """The number of selected entries."""
    return int(sum(int(m.bool().sum()) for m in mask.values()))


def jaccard(a: State, b: State) -> float:
    """|A ∩ B| / |A ∪ B| of two regions over the same keys (1.0 for two empty regions)."""
    if set(a) != set(b):
        raise ValueError(f"the masks cover different tensors: {sorted(set(a) ^ set(b))[:3]}")
    inter = sum(int((a[k].bool() & b[k].bool()).sum()) for k in a)
    union = sum(int((a[k].bool() | b[k].bool()).sum()) for k in a)
    return inter / union if union else 1.0


class RelaxedGraft(nn.Module):
    """``model`` evaluated at θ_pre + γ(S) ⊙ (θ_ft − θ_pre), with γ(S) = γ_base + (1 − 2γ_base)σ(S).

    The only trainable parameters are the logits S (one per float entry of ``base``, which
    holds the entries of ``model`` named ``prefix + key``); a copy of ``model`` is kept, frozen and
    in eval mode (no dropout while the mask learns). θ_pre, θ_ft − θ_pre and the start mask are
    buffers, so ``.to(device)`` moves them with the logits. S starts at U[0, 1) − ``sigmoid_bias``.
    """

    def __init__(self, model: nn.Module, base: State, finetuned: State, init: State, *, prefix: str = "",
                 sigmoid_bias: float = 5.0):
        super().__init__()
        self.keys = _check_pair(base, finetuned)
        _check_mask(init, self.keys, base)
        names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
        unknown = [prefix + k for k in self.keys if prefix + k not in names]
        if unknown:
            raise ValueError(f"the model has no entries {unknown[:3]}: pass prefix= so that prefix + key names "
                             f"the model's parameter (e.g. prefix='body.')")
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self.prefix = prefix
        for i, k in enumerate(self.keys):
            self.register_buffer(f"pre_{i}", base[k].float(), persistent=False)
            self.register_buffer(f"tau_{i}", finetuned[k].float() - base[k].float(), persistent=False)
            self.register_buffer(f"start_{i}", init[k].float(), persistent=False)
        self.logits = nn.ParameterList([nn.Parameter(torch.rand(base[k].shape) - sigmoid_bias) for k in self.keys])

    def _per_key(self, name: str) -> list[torch.Tensor]:
        return [getattr(self, f"{name}_{i}") for i in range(len(self.keys))]

    @property
    def pre(self) -> list[torch.Tensor]:
        """θ_pre per key."""
        return self._per_key("pre")

    @property
    def tau(self) -> list[torch.Tensor]:
        """θ_ft − θ_pre per key."""
        return self._per_key("tau")

    @property
    def start(self) -> list[torch.Tensor]:
        """The start mask γ_base per key."""
        return self._per_key("start")

    def train(self, mode: bool = True) -> RelaxedGraft:
        super().train(mode)
        self.model.eval()
        return self

    def relaxed(self) -> dict[str, torch.Tensor]:
        """γ(S) per key, values in (0, 1)."""
        return {k: b + (1 - 2 * b) * torch.sigmoid(s)
                for k, b, s in zip(self.keys, self.start, self.logits, strict=True)}

    def forward(self, *args, **kwargs):
        gamma = self.relaxed()
        params = {self.prefix + k: p + gamma[k] * t for k, p, t in zip(self.keys, self.pre, self.tau, strict=True)}
        return functional_call(self.model, params, args, kwargs)


class NormalizedSGD(torch.optim.Optimizer):
    """S ← S − lr · g / max|g| (the largest gradient entry over all parameters moves by ``lr``).

    Plain gradient descent on the mask logits, as the paper's code does, with the step scaled
    by one global number so that ``lr`` reads in logit units whatever the loss's scale; unlike
    Adam it keeps the relative sizes of the entries' gradients (Adam would move every logit
    by about ``lr``, the ones with negligible gradients too)."""

    def __init__(self, params, lr: float):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        scale = max((float(g.abs().max()) for g in grads), default=0.0)
        if scale == 0.0 or not math.isfinite(scale):
            return None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"] / scale)
        return None


def learn_mask(model: nn.Module, base: State, finetuned: State, data: Sequence[torch.Tensor], *,
               size: int | None = None, density: float | None = None, prefix: str = "", steps: int = 50,
               lr: float = 0.5, batch_size: int = 64, sigmoid_bias: float = 5.0, seed: int = 0,
               loss=None, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """The learned grafting region (Panigrahi et al. 2023, §3): start from the top-s movement
    mask, train the relaxed mask γ(S) (see :class:`RelaxedGraft`) for ``steps`` steps of
    :class:`NormalizedSGD` on minibatches of ``data`` with :func:`nbsupport.train.fit`, and keep
    the s entries with the largest γ(S) (s from ``size`` or ``density``).

    ``model`` is the network whose entries ``prefix + key`` the states hold (other parameters,
    e.g. a task head, stay as they are in ``model``); ``loss(model, batch)`` defaults to
    cross-entropy on batches ``(x, y)``. The mask trains on ``device`` (default
    :func:`nbsupport.device`). Returns bool masks keyed like ``base``, on the CPU.
    """
    from nbsupport.train import fit

    init = top_movement_mask(base, finetuned, size=size, density=density)
    s = mask_size(init)

    def build(_seed: int) -> RelaxedGraft:
        return RelaxedGraft(model, base, finetuned, init, prefix=prefix, sigmoid_bias=sigmoid_bias)

    def cross_entropy(m, batch):
        x, y = batch
        return F.cross_entropy(m(x), y)

    result = fit(build, tuple(data), steps=steps, batch_size=batch_size, loss=loss or cross_entropy,
                 optimizer=lambda m: NormalizedSGD(m.logits.parameters(), lr=lr), seeds=[seed], workers=1,
                 device=device, progress=False, desc="mask")
    with torch.no_grad():
        gamma = {k: v.cpu() for k, v in result.models[seed].relaxed().items()}
    return _top(gamma, s)
