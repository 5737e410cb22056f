#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtual environment with torch and the test/bench
# dependencies, then an in-place build of dense_conv._C (CPU kernels, plus CUDA kernels whenever
# nvcc and the CUDA build of torch are present). Sourced by tests/run.sh and bench/run.sh.
#   DENSE_CONV_VENV  where the venv lives (default: .venv in the repository)
#   USE_CUDA=0       CPU-only build; MAX_JOBS (default 2) parallel compile jobs
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DENSE_CONV_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "== creating virtual environment in $VENV"
  python3 -m venv "$VENV"
fi
# torch 2.14.1 (CUDA 13.0 build) is on this machine's disk; the rest comes from PyPI.
if ! "$PY" -c "import torch, numpy, scipy, pytest, ninja, matplotlib, expecttest" 2>/dev/null; then
  echo "== installing torch and test dependencies"
  "$PY" -m pip install -q --disable-pip-version-check torch==2.14.1 numpy scipy pytest ninja matplotlib expecttest
fi
if ! "$PY" -c "import librosa" 2>/dev/null; then
  # librosa: the CQT accuracy tests compare against it (they skip, saying so, if it cannot be installed).
  "$PY" -m pip install -q --disable-pip-version-check librosa || echo "== librosa could not be installed"
fi

if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda-13.0/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda-13.0
fi
echo "== building dense_conv._C in place (MAX_JOBS=${MAX_JOBS:-2})"
(cd "$ROOT" && MAX_JOBS="${MAX_JOBS:-2}" "$PY" setup.py -q build_ext --inplace)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
