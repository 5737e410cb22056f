#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtual environment with torch and the test/bench
# dependencies, then an in-place build of dense_conv._C (CPU kernels, plus CUDA kernels whenever
# nvcc and the CUDA build of torch are present). Sourced by tests/run.sh and bench/run.sh.
# Prints one line per stage; pip's and the compiler's output go to build/logs/*.log, and a stage that
# fails prints its log's path and its last lines (for a failed compile, the compiler's errors), then exits 1.
#   DENSE_CONV_VENV  where the venv lives (default: .venv in the repository)
#   DENSE_CONV_PYTHON  an interpreter that already has torch (a GPU machine's image without network): used as
#                    it is, no venv; missing dependencies are still installed with its pip
#   USE_CUDA=0       CPU-only build; MAX_JOBS (default 2) parallel compile jobs
#   VERBOSE=1        also show pip's and the compiler's output as it happens
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DENSE_CONV_VENV:-$ROOT/.venv}"
PY="${DENSE_CONV_PYTHON:-$VENV/bin/python}"
LOG_DIR="$ROOT/build/logs"
LOG_TAIL_LINES=40

# run_logged LOG CMD...: runs CMD with its output in LOG (on the terminal too under VERBOSE=1); CMD's status.
run_logged() {
  local log="$1"
  shift
  mkdir -p "$(dirname "$log")"
  echo "\$ $*" >"$log"
  # Unbuffered, so that Python's own lines keep their place among its subprocesses' lines.
  if [ "${VERBOSE:-0}" = 1 ]; then
    PYTHONUNBUFFERED=1 "$@" 2>&1 | tee -a "$log"
  else
    PYTHONUNBUFFERED=1 "$@" >>"$log" 2>&1
  fi
}

# stage_begin TEXT: the start of a stage's line; stage_end ends it with the time since stage_begin.
# Under VERBOSE=1 the command's output comes in between, so the end gets a line of its own.
stage_begin() {
  STAGE_TEXT="$1"
  STAGE_START=$SECONDS
  if [ "${VERBOSE:-0}" = 1 ]; then echo "== $STAGE_TEXT ..."; else printf '== %s ... ' "$STAGE_TEXT"; fi
}
stage_end() {
  local took=$((SECONDS - STAGE_START))
  if [ "${VERBOSE:-0}" = 1 ]; then printf '== %s ... ' "$STAGE_TEXT"; fi
  printf '%s in %dm%02ds\n' "$1" $((took / 60)) $((took % 60))
}

# fail_with_log LOG: ends the stage's line, shows the log's path and the useful part of it, and exits.
# A failed compile is followed by a long Python traceback, so for ninja's failures the excerpt is the
# failing commands with their errors (from ninja's first "FAILED:" line) and the log's last line.
fail_with_log() {
  stage_end "FAILED"
  echo "== full log: $1"
  if grep -q '^FAILED: ' "$1"; then
    echo "== the compiler's errors (at most $LOG_TAIL_LINES lines):"
    awk -v max="$LOG_TAIL_LINES" '/^FAILED: /{on = 1} on && n < max {print; n++} /^ninja: build stopped/{on = 0}' "$1"
    echo "== the log's last line:"
    tail -n 1 "$1"
  else
    echo "== its last $LOG_TAIL_LINES lines:"
    tail -n "$LOG_TAIL_LINES" "$1"
  fi
  exit 1
}

if [ -n "${DENSE_CONV_PYTHON:-}" ]; then
  PY="$(command -v "$PY")" || { echo "== DENSE_CONV_PYTHON=$DENSE_CONV_PYTHON: no such interpreter"; exit 1; }
  echo "== python: $PY (DENSE_CONV_PYTHON, no venv)"
elif [ -x "$PY" ]; then
  echo "== venv: ${VENV#"$ROOT"/} (exists)"
else
  stage_begin "venv: creating ${VENV#"$ROOT"/}"
  run_logged "$LOG_DIR/venv.log" python3 -m venv "$VENV" || fail_with_log "$LOG_DIR/venv.log"
  stage_end "done"
fi

# torch 2.14.1 (CUDA 13.0 build) is on this machine's disk; the rest comes from PyPI. DENSE_CONV_PYTHON's
# own torch is kept (never replaced by the pinned one).
DEPENDENCIES=(numpy scipy pytest ninja matplotlib expecttest tqdm)
[ -n "${DENSE_CONV_PYTHON:-}" ] || DEPENDENCIES=(torch==2.14.1 "${DEPENDENCIES[@]}")
if "$PY" -c "import torch, numpy, scipy, pytest, ninja, matplotlib, expecttest, tqdm" 2>/dev/null; then
  echo "== dependencies: ok"
else
  stage_begin "dependencies: installing ${DEPENDENCIES[*]} (log: build/logs/pip.log)"
  run_logged "$LOG_DIR/pip.log" "$PY" -m pip install -q --disable-pip-version-check "${DEPENDENCIES[@]}" \
    || fail_with_log "$LOG_DIR/pip.log"
  stage_end "installed"
fi
if ! "$PY" -c "import librosa" 2>/dev/null; then
  # librosa: the CQT accuracy tests compare against it (they skip, saying so, if it cannot be installed).
  stage_begin "librosa: installing (log: build/logs/pip-librosa.log)"
  if run_logged "$LOG_DIR/pip-librosa.log" "$PY" -m pip install -q --disable-pip-version-check librosa; then
    stage_end "installed"
  else
    stage_end "could not be installed"
  fi
fi

if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda-13.0/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda-13.0
fi
BUILD_LOG="$LOG_DIR/build.log"
stage_begin "build: dense_conv._C (MAX_JOBS=${MAX_JOBS:-2}, log: build/logs/build.log)"
(cd "$ROOT" && MAX_JOBS="${MAX_JOBS:-2}" run_logged "$BUILD_LOG" "$PY" setup.py -q build_ext --inplace) \
  || fail_with_log "$BUILD_LOG"
# setup.py says which kernels it builds ("dense_conv: building CPU + CUDA extension (...)").
BUILD_KIND="$(sed -n "s/^dense_conv: building \(.*\) extension.*/\1/p" "$BUILD_LOG" | head -n 1)"
BUILD_KIND="${BUILD_KIND%-only}"
stage_end "${BUILD_KIND:+$BUILD_KIND kernels, }done"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
