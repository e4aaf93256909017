"""Warm-starting a deeper model from a trained shallow one (model growth).

Du et al. 2024, "Stacking Your Transformers: A Closer Look at Model Growth for Efficient LLM
Pre-Training", §2-3: the depthwise operator G_stack trains a small model of ``L`` layers, then
builds a model of ``g·L`` layers by stacking ``g`` copies of its layer sequence
(``[1..L, 1..L, ...]``) and keeps the embeddings, the final norm and the output layer; the
grown model continues training. :func:`grow_depth` builds it from a trained :class:`GPT`, and,
as a control, the same deeper model whose added layers are freshly initialized instead.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from nbsupport.models.gpt import GPT

__all__ = ["grow_depth"]

GROWTH = ("stack", "random")


def grow_depth(model: GPT, factor: int = 2, how: str = "stack") -> GPT:
    """A ``factor``× deeper copy of ``model``: embeddings, final norm and head copied;
    ``how="stack"`` fills layer ``i`` with a copy of trained layer ``i mod L`` (G_stack),
    ``how="random"`` keeps the ``L`` trained layers first and initializes the added ones as a
    fresh GPT of the new depth would. ``model`` itself is not changed."""
    if not isinstance(factor, int) or factor < 2:
        raise ValueError(f"grow_depth: factor must be an int >= 2, got {factor!r}")
    if how not in GROWTH:
        raise ValueError(f"grow_depth: how must be one of {GROWTH}, got {how!r}")
    depth = model.cfg.layers
    grown = GPT(replace(model.cfg, layers=depth * factor)).to(next(model.parameters()).device)
    for name in ("tok", "pos", "ln_f", "head"):
        setattr(grown, name, copy.deepcopy(getattr(model, name)))
    for i in range(depth * factor):
        if how == "stack" or i < depth:
            grown.blocks[i] = copy.deepcopy(model.blocks[i % depth])
    return grown
