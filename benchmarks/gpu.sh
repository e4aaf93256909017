#!/usr/bin/env bash
# On a bare CUDA machine with Python 3.10+: install what is missing, run the `gpu`-marked
# tests and the kernel benchmarks on CUDA. Writes benchmarks/results/ and prints the tables.
# Budget: under 8 minutes on one H100-class GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    # PyPI's Linux torch wheels are CUDA builds
    $PY -m pip install -q "torch==2.13.0"
fi
# nbsupport's other dependencies (keeping whatever torch is there), triton, pytest
$PY - <<'PYEOF' > /tmp/nbsupport-gpu-requirements.txt
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = p["dependencies"] + p["optional-dependencies"]["kernels"] + ["pytest>=8.0", "pytest-timeout>=2.3", "torchmetrics>=1.4"]
print("\n".join(d for d in deps if not d.startswith("torch==")))
PYEOF
$PY -m pip install -q -r /tmp/nbsupport-gpu-requirements.txt
$PY -m pip install -q --no-deps -e .

$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
unset TRITON_INTERPRET
timeout 240 $PY -m pytest tests -m gpu -q -p no:cacheprovider --timeout 120 || status=$?
cd benchmarks
BENCH_DEVICES=cuda timeout 300 $PY run.py cross_entropy ssm calibration recsys
exit "${status:-0}"
