#!/usr/bin/env bash
# Every GPU test and GPU benchmark of the project in one call (<= 8 minutes), one summary table.
#
#   benchmarks/gpu_suite.sh                  run it on a machine with a CUDA GPU
#   benchmarks/gpu_suite.sh --dry-run        on any machine: prove that it starts and that every
#                                            step it names exists (CI runs this)
#   benchmarks/gpu_suite.sh --smoke          on any machine: run every step end to end on the CPU
#                                            at tiny sizes (CI runs this too; needs torchdr)
#   benchmarks/gpu_suite.sh --only umap spectra   run only the steps whose name contains a word
#   benchmarks/gpu_suite.sh --log-dir DIR    where each step's log and summary.json go
#   benchmarks/gpu_suite.sh --fetch-wheels   (where pip reaches an index) download the optional
#                                            packages it needs into the wheel directory
#
# Steps (benchmarks/gpu_suite.py): pytest -m gpu (tests/gpu), projection_gpu.py (PCA 1M x 768,
# kNN + UMAP 1M x 768 goal <= 10 s, UMAP 100k x 12 depths goal <= 30 s), spectra_7b_gpu.py
# (goal <= 8 s), compare_gpu.py (4 of the 32 layers, the model's time scaled; goal <= 15 s; and
# CKA), dimension_gpu.py (100k and 1M), svd_gpu.py (full SVDs: cuSOLVER drivers vs float64 Gram).
#
# Python: $EXPLORER_PYTHON, else ./.venv/bin/python, else python3; this clone is put first on
# PYTHONPATH. A GPU machine may have no index to install from: the optional packages that are
# missing (torchdr, the `gpu` extra) are installed from local wheels only, from $EXPLORER_WHEELS
# or ./wheels (git-ignored; carry it along with the working tree), never from the network.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${EXPLORER_PYTHON:-}" ]; then
  py="$EXPLORER_PYTHON"
elif [ -x .venv/bin/python ]; then
  py="$PWD/.venv/bin/python"
else
  py="$(command -v python3)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
wheels="${EXPLORER_WHEELS:-$PWD/wheels}"
optional=("torchdr>=0.5,<0.6")

if [ "${1:-}" = "--fetch-wheels" ]; then
  "$py" -m pip download --no-deps -d "$wheels" "${optional[@]}"
  exit 0
fi

if ! "$py" -c "import torch" 2>/dev/null; then
  echo "[gpu_suite] $py cannot import torch: set EXPLORER_PYTHON to a Python that has torch" \
    "(a CUDA build) and explorer's dependencies (scripts/setup hf,demo,test,gpu makes one)" >&2
  exit 1
fi
dry=0
for arg in "$@"; do [ "$arg" = "--dry-run" ] && dry=1; done
if [ "$dry" = 0 ] && ! "$py" -c "import torchdr" 2>/dev/null; then
  if compgen -G "$wheels/torchdr-*.whl" >/dev/null; then
    echo "[gpu_suite] installing torchdr from $wheels (no index)"
    "$py" -m pip install -q --no-index --find-links "$wheels" "${optional[@]}" \
      || echo "[gpu_suite] could not install torchdr from $wheels: GPU UMAP steps will fail"
  else
    echo "[gpu_suite] torchdr is missing and $wheels has no wheel of it (make one with" \
      "--fetch-wheels where pip reaches an index): GPU UMAP steps will fail"
  fi
fi
exec "$py" benchmarks/gpu_suite.py "$@"
