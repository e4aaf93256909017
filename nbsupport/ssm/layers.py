"""S4D layers and models built from a named initialization (the layer itself takes numbers).

With a ``generator``, everything random in the new module derives from it: its SSM parameters
draw from it directly, and the layers that draw from torch's global generator (the encoder,
the decoder, normalization) are built under a global seed taken from it, with the global
state restored afterwards. So a model built in a worker process that trained other seeds
before is the same as one built in a fresh process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from nbsupport.models.s4d import S4D, S4DModel
from nbsupport.ssm.init import s4d_init


def _seeded(generator: torch.Generator | None, build: Callable[[], Any]) -> Any:
    """``build()`` under a global torch seed drawn from ``generator`` (global state restored)."""
    if generator is None:
        return build()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def s4d_layer(d_model: int, *, init: str = "legs", d_state: int = 64,
              generator: torch.Generator | None = None, **kw) -> S4D:
    """An :class:`~nbsupport.models.s4d.S4D` layer with ``A = s4d_init(init, d_state)``."""
    A = s4d_init(init, d_state, generator)
    return _seeded(generator, lambda: S4D(d_model, A, d_state=d_state, generator=generator, **kw))


def s4d_model(d_input: int, d_output: int, *, init: str = "legs", d_state: int = 64,
              generator: torch.Generator | None = None, **kw) -> S4DModel:
    """An :class:`~nbsupport.models.s4d.S4DModel` whose layers start from ``s4d_init(init, d_state)``
    (``A_init`` overrides the named init, e.g. a PTD init)."""
    A = kw.pop("A_init", None)
    A = s4d_init(init, d_state, generator) if A is None else A
    return _seeded(generator, lambda: S4DModel(d_input, d_output, A_init=A, d_state=d_state, generator=generator, **kw))
