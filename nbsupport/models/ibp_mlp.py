"""The MLP of the certified-training notebook (warmup/05), in a form interval bound
propagation can walk layer by layer (:mod:`nbsupport.warmup.ibp`)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["IBPNet"]


class IBPNet(nn.Module):
    """MLP ``in → hidden… → classes`` with ReLU after every hidden layer and, with
    ``batch_norm``, batch norm between each hidden linear layer and its ReLU.

    ``body`` holds only ``Linear``, ``BatchNorm1d`` and ``ReLU`` layers; ``head`` is the last
    linear layer, which IBP folds into the class margins (Gowal et al. 2018, §3)."""

    def __init__(self, inputs: int, hidden: list[int], classes: int, batch_norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, h)] + ([nn.BatchNorm1d(h)] if batch_norm else []) + [nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
