#!/usr/bin/env bash
# On a CUDA machine with Python 3.10+: install only what is missing, run the `gpu`-marked
# tests and the kernel benchmarks on CUDA. Writes benchmarks/results/ and prints the tables.
# Budget: under 8 minutes on one H100-class GPU.
#
# Offline machines: set WHEELS to a folder of wheels for the missing packages (usually just
# plotly and narwhals on an image that already has torch, triton, pytest and torchmetrics);
# pip then installs from there only. nbsupport itself is used from this checkout (PYTHONPATH),
# so nothing needs building.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/install_missing.sh
PY=${PYTHON:-python3}
PIP=($PY -m pip install -q ${WHEELS:+--no-index --find-links "$WHEELS"})

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    # PyPI's Linux torch wheels are CUDA builds
    "${PIP[@]}" -c constraints.txt torch
fi
# what the gpu tests and kernel benchmarks import, by distribution name; installed when absent
install_missing numpy pandas scipy tqdm plotly triton pytest pytest-timeout torchmetrics
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
unset TRITON_INTERPRET
timeout 240 $PY -m pytest tests/kernels -m gpu -q -p no:cacheprovider --timeout 120 || status=$?
cd benchmarks
BENCH_DEVICES=cuda timeout 300 $PY run.py cross_entropy ssm calibration recsys
exit "${status:-0}"
