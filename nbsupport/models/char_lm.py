"""A character-level MLP language model (Bengio et al. 2003): the previous ``context``
characters, embedded and concatenated, through one hidden layer to next-character logits.

Far cheaper per step than the tiny GPT (:mod:`nbsupport.models.gpt`), with enough capacity to
memorize a few thousand characters, which is what the upsample-or-upweight experiment needs.
"""

from __future__ import annotations

import torch
from torch import nn


class CharMLP(nn.Module):
    """``forward(idx (B, context)) -> logits (B, vocab)`` for the character after the window."""

    def __init__(self, vocab: int, context: int = 8, emb: int = 16, hidden: int = 256) -> None:
        super().__init__()
        self.context = context
        self.emb = nn.Embedding(vocab, emb)
        self.net = nn.Sequential(nn.Linear(context * emb, hidden), nn.Tanh(), nn.Linear(hidden, vocab))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.shape[-1] != self.context:
            raise ValueError(f"expected windows of {self.context} characters, got {idx.shape[-1]}")
        return self.net(self.emb(idx).flatten(-2))
