"""Small classifiers for MNIST 5k and synthetic vectors: an MLP and a small CNN, both returning logits.

Deliberately without dropout or batch normalization, so that trained long enough on a few
thousand examples they overfit and become overconfident (Guo et al. 2017, §3).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Module):
    """``inputs -> [Linear -> ReLU] x depth -> Linear(classes)``; images are flattened."""

    def __init__(self, inputs: int, classes: int, hidden: int = 256, depth: int = 2) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        dims = [inputs] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.flatten(1)))


class CNN(nn.Module):
    """conv(1→c) → pool → conv(c→2c) → pool → Linear(hidden) → Linear(classes), for 28x28 images
    given as (n, 784) or (n, 1, 28, 28)."""

    def __init__(self, classes: int = 10, channels: int = 16, hidden: int = 128, side: int = 28) -> None:
        super().__init__()
        if side % 4:
            raise ValueError(f"side must be divisible by 4, got {side}")
        self.side = side
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.fc = nn.Linear(2 * channels * (side // 4) ** 2, hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, self.side, self.side)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(F.relu(self.fc(x.flatten(1))))
