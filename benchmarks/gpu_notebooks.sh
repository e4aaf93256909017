#!/usr/bin/env bash
# On a CUDA machine: every notebook at smoke on CUDA, then one theme at `full`; the runner's
# reports (index.html, index.json, executed notebooks) go to $OUT/smoke and $OUT/full and each
# notebook's seconds, status and verdicts to $OUT/notebooks.tsv. Each part is a step (see
# gpu_steps.sh): its failure or timeout is reported and the next part still runs; the runner
# keeps what finished when a limit runs out (its report is updated after every notebook).
# Called by gpu.sh under its deadline; alone it has TOTAL_S seconds (default 330).
#
#   THEME=ssm bash benchmarks/gpu_notebooks.sh             # smoke everything, then ssm at full
#   SMOKE=0 THEME=warmup FULL_S=570 TOTAL_S=590 bash benchmarks/gpu_notebooks.sh   # one theme at full only
#   THEME=none bash benchmarks/gpu_notebooks.sh            # the smoke pass only
#   bash benchmarks/gpu_notebooks.sh --dry-run             # the steps and their limits, nothing run
#
# THEME: warmup (default), merging, ssm, calibration, recsys, start or none. JOBS: notebooks run
# side by side on the one GPU (default 4). SMOKE_S and FULL_S: each part's limit (default 110
# and 130 seconds). Offline machines: set WHEELS as for benchmarks/gpu.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--dry-run" ] && export DRY_RUN=1
PY=${PYTHON:-${PY:-python3}}
THEME=${THEME:-warmup}
JOBS=${JOBS:-4}
OUT=${OUT:-outputs/gpu}
SMOKE=${SMOKE:-1}
SMOKE_S=${SMOKE_S:-110}
FULL_S=${FULL_S:-130}

case "$THEME" in
    warmup|merging|ssm|calibration|recsys) FULL_PATH=notebooks/$THEME ;;
    start) FULL_PATH=notebooks/00_start_here.ipynb ;;
    none) FULL_PATH= ;;
    *) echo "THEME=$THEME: choose warmup, merging, ssm, calibration, recsys, start or none" >&2; exit 2 ;;
esac
if [ -z "${DRY_RUN:-}" ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "no CUDA device visible to torch: this script checks the notebooks on a GPU" >&2
    exit 2
fi
source benchmarks/gpu_steps.sh
[ -n "${STEPS_DEADLINE:-}" ] || rm -rf "$OUT/smoke" "$OUT/full" "$OUT/logs"
steps_init "$OUT" "${TOTAL_S:-330}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" NBSUPPORT_DEVICE=cuda NBSUPPORT_HEADLESS=1
unset NBSUPPORT_MAX_STEPS NBSUPPORT_SCALE NBSUPPORT_IMPL TRITON_INTERPRET

step milton 15 "$PY -c 'from nbsupport.data.text import fetch_milton; fetch_milton()'"
if [ "$SMOKE" != 0 ]; then
    step notebooks_smoke "$SMOKE_S" "$PY -m nbsupport run --scale smoke --jobs $JOBS --out $OUT/smoke"
fi
if [ -n "$FULL_PATH" ]; then
    step "notebooks_full_$THEME" "$FULL_S" "$PY -m nbsupport run $FULL_PATH --scale full --jobs $JOBS --out $OUT/full"
fi
STEPS_RESERVE=0 step notebook_times 10 "$PY benchmarks/gpu_report.py notebooks $OUT"
steps_failed
