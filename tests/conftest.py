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
    # every notebook at full under the step cap takes minutes: its own target, `make test-full`
    if not os.environ.get("NBSUPPORT_TEST_FULL"):
        skip_full = pytest.mark.skip(reason="the capped full run: `make test-full` (NBSUPPORT_TEST_FULL=1)")
        for item in items:
            if "full_capped" in item.keywords:
                item.add_marker(skip_full)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-tensor tests (threads only add overhead and
    contention on a shared CI machine). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
