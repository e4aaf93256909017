"""benchmarks/gpu_notebooks.sh: valid bash, and it refuses bad input before installing anything."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_notebooks.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(**env):
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_unknown_theme_is_one_clear_error():
    out = run(THEME="nope")
    assert out.returncode == 2 and "THEME=nope: choose warmup" in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gets")
def test_without_cuda_it_says_so():
    out = run(THEME="ssm")
    assert out.returncode == 2 and "no CUDA device" in out.stderr
