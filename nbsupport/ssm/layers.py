"""S4D layers and models built from a named initialization (the layer itself takes numbers)."""

from __future__ import annotations

import torch

from nbsupport.models.s4d import S4D, S4DModel
from nbsupport.ssm.init import s4d_init


def s4d_layer(d_model: int, *, init: str = "legs", d_state: int = 64,
              generator: torch.Generator | None = None, **kw) -> S4D:
    """An :class:`~nbsupport.models.s4d.S4D` layer with ``A = s4d_init(init, d_state)``."""
    return S4D(d_model, s4d_init(init, d_state, generator), d_state=d_state, generator=generator, **kw)


def s4d_model(d_input: int, d_output: int, *, init: str = "legs", d_state: int = 64,
              generator: torch.Generator | None = None, **kw) -> S4DModel:
    """An :class:`~nbsupport.models.s4d.S4DModel` whose layers start from ``s4d_init(init, d_state)``
    (``A_init`` overrides the named init, e.g. a PTD init)."""
    A = kw.pop("A_init", None)
    A = s4d_init(init, d_state, generator) if A is None else A
    return S4DModel(d_input, d_output, A_init=A, d_state=d_state, generator=generator, **kw)
