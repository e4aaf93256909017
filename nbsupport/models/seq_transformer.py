"""A small Transformer encoder for sequence classification and denoising, sized to compare
with :class:`nbsupport.models.s4d.S4DModel` (Amos et al. 2023, "Never Train from Scratch")."""

from __future__ import annotations

import torch
from torch import nn

from nbsupport.models.pooling import pool


class SeqTransformer(nn.Module):
    """Linear encoder + learned positions -> pre-norm Transformer encoder -> pooling -> decoder.

    Same interface as ``S4DModel``: input (batch, L, d_input); ``pool`` in mean/last/None;
    ``causal=True`` masks attention to the past (for causal denoising)."""

    def __init__(self, d_input: int, d_output: int, d_model: int = 64, n_layers: int = 2,
                 n_heads: int = 4, max_len: int = 1024, pool: str | None = "mean",
                 dropout: float = 0.0, causal: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Linear(d_input, d_model)
        self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.pool, self.causal = pool, causal
        self.decoder = nn.Linear(d_model, d_output)

    def features(self, u: torch.Tensor) -> torch.Tensor:
        L = u.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(L, device=u.device) if self.causal else None
        return self.norm(self.blocks(self.encoder(u) + self.pos[:L], mask=mask, is_causal=self.causal))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.decoder(pool(self.features(u), self.pool))

    def replace_head(self, d_output: int, pool: str | None) -> None:
        w = self.decoder.weight
        self.decoder = nn.Linear(w.shape[1], d_output, dtype=w.dtype, device=w.device)
        self.pool = pool
