#!/usr/bin/env bash
# The benchmark command: sets everything up on a fresh machine, then runs the benchmark.
# Extra arguments go to bench/bench.py (e.g. bash bench/run.sh --quick). VERBOSE=1 shows the build's output.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/setup_env.sh"
# nnAudio is an optional comparison for the CQT rows; the benchmark says so when it is missing.
if ! "$PY" -c "import nnAudio" 2>/dev/null; then
  stage_begin "nnAudio: installing (log: build/logs/pip-nnAudio.log)"
  if run_logged "$LOG_DIR/pip-nnAudio.log" "$PY" -m pip install -q --disable-pip-version-check --no-deps nnAudio; then
    stage_end "installed"
  else
    stage_end "could not be installed; its rows will be skipped"
  fi
fi
cd "$ROOT"
# `auto` priced with this machine's own constants (python -m dense_conv.calibrate, cached per CPU model)
if "$PY" -c "import os, sys; from dense_conv import _algorithm as a; sys.exit(not os.path.exists(a.cache_path(a.machine_key())))"
then
  echo "== auto calibration: cached for this machine"
else
  stage_begin "auto calibration: python -m dense_conv.calibrate (log: build/logs/calibrate.log)"
  run_logged "$LOG_DIR/calibrate.log" "$PY" -m dense_conv.calibrate || fail_with_log "$LOG_DIR/calibrate.log"
  stage_end "done"
fi
echo "== running the benchmark"
exec "$PY" bench/bench.py "$@"
