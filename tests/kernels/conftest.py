"""Shared fixture: a Triton module loaded under the CPU interpreter, whatever the machine."""

import importlib.util
import os
import sys
import warnings

import pytest


@pytest.fixture(scope="module")
def interpreted():
    """``interpreted("nbsupport.kernels.x_triton")``: that module loaded with TRITON_INTERPRET=1
    under a private name, so its kernels run on CPU tensors even where CUDA is present and the
    regular (compiled) module stays as it is for the ``gpu`` tests."""
    pytest.importorskip("triton")
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"

    def load(module: str):
        origin = importlib.util.find_spec(module).origin
        name = "_interpreted_" + module.replace(".", "_")
        mod = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, origin))
        sys.modules[name] = mod
        mod.__spec__.loader.exec_module(mod)
        return mod

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # masked lanes compute -inf - -inf
            yield load
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old
