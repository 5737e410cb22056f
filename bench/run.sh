#!/usr/bin/env bash
# The benchmark command: sets everything up on a fresh machine, then runs the benchmark.
# Extra arguments go to bench/bench.py (e.g. bash bench/run.sh --quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/setup_env.sh"
# nnAudio is an optional comparison for the CQT rows; the benchmark says so when it is missing.
"$PY" -c "import nnAudio" 2>/dev/null || "$PY" -m pip install -q --disable-pip-version-check --no-deps nnAudio \
  || echo "== nnAudio could not be installed; its rows will be skipped"
cd "$ROOT"
exec "$PY" bench/bench.py "$@"
