"""Shared test settings: headless widgets, smoke scale, deterministic torch."""

import os

import pytest
import torch

os.environ.setdefault("NBSUPPORT_HEADLESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not torch.cuda.is_available():
    # Triton kernels run through the CPU interpreter; it must be set before they are defined.
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
