"""Classifiers for the merging notebooks: a shared *body* whose fine-tunes get merged, and a
per-task linear *head*.

- :class:`SmallCNN`: two conv layers and a dense layer for 28x28 images (MNIST 5k).
- :class:`SentenceBody`: the top transformer layer(s) of all-MiniLM-L6-v2 with mean pooling,
  run on cached hidden states of the frozen lower layers (:func:`sentence_features`), so a
  fine-tuning step costs one or two layers instead of six. :class:`TransformerLayer` is the
  BERT post-LayerNorm layer written out in plain torch (same parameter names as
  ``transformers``' ``BertLayer``, so the pretrained weights load directly, and
  ``torch.func`` transforms such as the per-example gradients of the Fisher work on it).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nbsupport.atomic import atomic_open


class SmallCNN(nn.Module):
    """conv(1→16w) → pool → conv(16w→32w) → pool → dense(1568w→``dim``·w); ~105k parameters at
    width multiplier ``width`` = 1, about w² times as many at width w.

    The three layers are ``layers.0``, ``layers.1``, ``layers.2`` (so layer swapping finds them).
    """

    def __init__(self, dim: int = 64, width: int = 1):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"SmallCNN: width must be a positive int multiplier, got {width!r}")
        c1, c2 = 16 * width, 32 * width
        self.layers = nn.ModuleList([nn.Conv2d(1, c1, 3, padding=1), nn.Conv2d(c1, c2, 3, padding=1),
                                     nn.Linear(c2 * 7 * 7, dim * width)])
        self.dim = dim * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.layers[0](x)), 2)
        x = F.max_pool2d(F.relu(self.layers[1](x)), 2)
        return F.relu(self.layers[2](x.flatten(1)))


class _SelfAttention(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)


class _Output(nn.Module):
    def __init__(self, d_in: int, d: int):
        super().__init__()
        self.dense = nn.Linear(d_in, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)


class _Attention(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.self = _SelfAttention(d)
        self.output = _Output(d, d)


class _Intermediate(nn.Module):
    def __init__(self, d: int, d_ff: int):
        super().__init__()
        self.dense = nn.Linear(d, d_ff)


class TransformerLayer(nn.Module):
    """BERT's post-LN encoder layer (Devlin et al. 2019), parameter names as in ``BertLayer``."""

    def __init__(self, d: int = 384, heads: int = 12, d_ff: int = 1536):
        super().__init__()
        self.heads = heads
        self.attention = _Attention(d)
        self.intermediate = _Intermediate(d, d_ff)
        self.output = _Output(d_ff, d)

    def forward(self, h: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        n, length, d = h.shape
        a = self.attention.self

        def split(x):
            return x.view(n, length, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(a.query(h)), split(a.key(h)), split(a.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + additive_mask
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, d)
        o = self.attention.output
        h = o.LayerNorm(o.dense(ctx) + h)
        inter = F.gelu(self.intermediate.dense(h))
        return self.output.LayerNorm(self.output.dense(inter) + h)


class SentenceBody(nn.Module):
    """Top layers of the sentence model + mean pooling, on packed cached features.

    Input: (n, L, d+1) floats, the hidden states entering the first trainable layer with the
    attention mask (1 for tokens, 0 for padding) as the last channel. Output: (n, d).
    """

    def __init__(self, n_layers: int = 1, d: int = 384):
        super().__init__()
        self.layers = nn.ModuleList([TransformerLayer(d) for _ in range(n_layers)])
        self.dim = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, m = x[..., :-1].float(), x[..., -1].float()
        additive = (1.0 - m)[:, None, None, :] * -1e4
        for layer in self.layers:
            h = layer(h, additive)
        return (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)


class Classifier(nn.Module):
    """``head(body(x))``: a shared body and a linear head for one task."""

    def __init__(self, body: nn.Module, n_classes: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def pretrained_top_layers(n_layers: int = 1) -> dict[str, torch.Tensor]:
    """State dict for :class:`SentenceBody` with the pretrained top ``n_layers`` of all-MiniLM-L6-v2."""
    from nbsupport.data.sentence import load_sentence_model

    bert = load_sentence_model()[0].auto_model
    layers = bert.encoder.layer
    out = {}
    for i, layer in enumerate(layers[len(layers) - n_layers:]):
        for k, v in layer.state_dict().items():
            out[f"layers.{i}.{k}"] = v.detach().clone().float()
    return out


def sentence_features(texts: list[str], n_trainable: int = 1, max_len: int = 32,
                      cache_key: str | None = None) -> np.ndarray:
    """Packed (n, max_len, 385) float16 features: the hidden states entering the top
    ``n_trainable`` layers of all-MiniLM-L6-v2 (the lower layers frozen), plus the mask.

    Computed once and cached under ``data/cache/merging/`` when ``cache_key`` is given.
    """
    from nbsupport.data.locate import CACHE

    path = None
    if cache_key is not None:
        digest = hashlib.sha1(("\n".join(texts) + f"|{n_trainable}|{max_len}").encode()).hexdigest()[:12]
        path = CACHE / "merging" / f"{cache_key}-{digest}.npy"
        if path.exists():
            return np.load(path)
    from nbsupport.data.sentence import load_sentence_model

    st = load_sentence_model()
    bert, tok = st[0].auto_model, st.tokenizer
    out = np.empty((len(texts), max_len, bert.config.hidden_size + 1), dtype=np.float16)
    bert.eval()
    with torch.no_grad():
        for s in range(0, len(texts), 64):
            enc = tok(texts[s:s + 64], padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
            hs = bert(**enc, output_hidden_states=True).hidden_states
            h = hs[len(hs) - 1 - n_trainable]
            out[s:s + 64, :, :-1] = h.numpy().astype(np.float16)
            out[s:s + 64, :, -1] = enc["attention_mask"].numpy()
    if path is not None:
        with atomic_open(path) as f:  # parallel workers may fill the same cache entry
            np.save(f, out)
    return out
