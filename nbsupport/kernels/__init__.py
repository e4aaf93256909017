"""One resolver for every kernel: ``impl = resolve(op, device, impl=None)``.

Order of precedence: the explicit ``impl`` argument, then ``$NBSUPPORT_IMPL``
(``reference``, ``triton`` or ``fast``), then the automatic choice: Triton on CUDA when
``triton`` imports (except the ops in :data:`CUDA_PREFERS_FAST`, where a measurement showed the
fast path faster on a GPU), otherwise the CPU fast path (``fast``) when the op has one, else the
reference. ``fast`` names the op's restructured torch path (chunked or blocked so that no
large temporary is built; no ``torch.compile``); it is what runs on CPU by default. An
unknown name raises one ``ValueError`` listing the valid ones. docs/kernels.md describes
every op and its paths.

Each op module registers its paths with :func:`register`. Triton modules are imported
lazily, on first use, so ``TRITON_INTERPRET=1`` can be set before they define kernels.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from functools import cache

import torch

IMPLS = ("reference", "triton", "fast")

# op -> impl -> "module:function" (imported on first use)
_REGISTRY: dict[str, dict[str, str]] = {}


def _unknown(name: str, source: str) -> ValueError:
    valid = ", ".join(repr(i) for i in IMPLS)
    return ValueError(f"unknown kernel impl {name!r} ({source}); valid values are {valid}")


def register(op: str, impl: str, target: str) -> None:
    """Register ``target`` ("package.module:function") as the ``impl`` path of ``op``."""
    if impl not in IMPLS:
        raise _unknown(impl, f"registering op {op!r}")
    _REGISTRY.setdefault(op, {})[impl] = target


@cache
def triton_available() -> bool:
    """True when the ``triton`` package imports (the ``kernels`` extra)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        importlib.import_module("triton")
    except Exception:
        return False
    return True


def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


#: Ops whose automatic choice on CUDA is the ``fast`` path, not Triton, with the measurement
#: behind it. s4d_kernel on an NVIDIA H200 (Nov 2026, H = 256, N = 64, L = 16k, forward and
#: backward): blocked matmul 0.6 ms, Triton 2.8 ms (Triton saves memory: 16 MB against 96 MB).
#: ``impl="triton"`` or ``NBSUPPORT_IMPL=triton`` still selects the kernel.
CUDA_PREFERS_FAST = frozenset({"s4d_kernel"})


def ops() -> list[str]:
    """Every registered op."""
    _load_ops()
    return sorted(_REGISTRY)


def available(op: str) -> list[str]:
    """The paths registered for ``op``."""
    _load_ops()
    if op not in _REGISTRY:
        raise KeyError(f"unknown op {op!r}; known ops: {', '.join(sorted(_REGISTRY))}")
    return list(_REGISTRY[op])


def choose(op: str, device: torch.device | str, impl: str | None = None) -> str:
    """The name of the path ``resolve`` would use."""
    paths = available(op)
    device = torch.device(device)
    env = os.environ.get("NBSUPPORT_IMPL") or None
    name = impl or env
    if name is not None:
        if name not in IMPLS:
            raise _unknown(name, "the impl argument" if impl else "$NBSUPPORT_IMPL")
        if name not in paths:
            raise ValueError(f"op {op!r} has no {name!r} path; it has {paths}")
        if name == "triton":
            if not triton_available():
                raise RuntimeError("impl 'triton' needs the triton package: pip install -e '.[kernels]'")
            if device.type != "cuda" and not interpreting():
                raise RuntimeError(
                    "impl 'triton' runs on CUDA tensors; on CPU set TRITON_INTERPRET=1 before "
                    "importing nbsupport (slow, for tests) or choose 'fast' or 'reference'"
                )
        return name
    if device.type == "cuda" and "triton" in paths and triton_available() and op not in CUDA_PREFERS_FAST:
        return "triton"
    return "fast" if "fast" in paths else "reference"


def resolve(op: str, device: torch.device | str, impl: str | None = None) -> Callable:
    """Return the function implementing ``op`` on ``device`` (see module docstring)."""
    name = choose(op, device, impl)
    module, func = _REGISTRY[op][name].split(":")
    return getattr(importlib.import_module(module), func)


@cache
def _load_ops() -> None:
    # importing an op module registers its paths
    for module in OP_MODULES:
        importlib.import_module(module)


#: Modules that register ops; a new op adds its module here.
OP_MODULES = [
    "nbsupport.kernels.calibration_stats",
    "nbsupport.kernels.cross_entropy",
    "nbsupport.kernels.merge_core",
    "nbsupport.kernels.vandermonde",
    "nbsupport.kernels.topk",
]
