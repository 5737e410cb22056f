#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs the whole test suite.
# Extra arguments go to pytest (e.g. bash tests/run.sh -k emulated -x). VERBOSE=1 shows the build's output.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/setup_env.sh"
cd "$ROOT"
echo "== running the tests"
exec "$PY" -m pytest tests -q -ra "$@"
