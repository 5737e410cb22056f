#!/usr/bin/env bash
# The one command a CUDA machine runs (about 10 minutes on one H100-class GPU, most of it the build):
#   1. set-up and build for the local GPU (tools/setup_env.sh; TORCH_CUDA_ARCH_LIST = its compute capability),
#   2. the GPU tests (pytest -m gpu: each test with a CUDA device parameter or a needs-a-GPU skip, tests/conftest.py),
#   3. the CUDA benchmark rows, every algorithm including fft and auto (bench/bench.py --cuda-only),
#   4. per-kernel device times of the CUDA paths (tools/gpu_kernel_times.py: CUDA events and torch.profiler),
#   5. a refit of the CUDA auto rule (choose_cuda / CUDA_FFT_MIN_TAPS) from those timings and a sweep
#      (tools/refit_cuda_auto.py).
# Writes results/gpu_check/ (the benchmark's bench.json and bench.png, kernel_times.json, each step's log) and
# results/gpu_check.json (the refit, with the tests' exit status). Without a GPU it says so and exits 0. Exit
# status: 1 when a step fails (the later steps still run once the build is there), else 0.
#   MAX_JOBS     parallel compile jobs (default: the number of CPUs)
#   DENSE_CONV_VENV, DENSE_CONV_PYTHON, VERBOSE: as for tools/setup_env.sh (DENSE_CONV_PYTHON=python3 on an image
#                that has torch and no network; PIP_NO_INDEX=1 then makes a missing package fail at once)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/results/gpu_check"

# A GPU is one that nvidia-smi lists (the driver's view: no Python or build needed to find out).
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "gpu_check: no GPU present (nvidia-smi lists none): nothing to check on this machine; run it on a CUDA machine."
  exit 0
fi
nvidia-smi -L

# Build for this GPU only (the first GPU's compute capability, e.g. 9.0): a fraction of the default list's time.
ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')"
if [[ "$ARCH" =~ ^[0-9]+\.[0-9]+$ ]]; then
  export TORCH_CUDA_ARCH_LIST="$ARCH"
else
  echo "gpu_check: nvidia-smi does not report the compute capability; torch detects the architecture itself"
fi
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
export FORCE_CUDA=1  # a CPU-only build here would be an error, not a fallback
set -e
source "$ROOT/tools/setup_env.sh"
set +e
cd "$ROOT"
mkdir -p "$OUT"
if ! "$PY" -c "import sys, torch, dense_conv
sys.exit(not (torch.cuda.is_available() and dense_conv.cuda_kernels_compiled()))"; then
  echo "gpu_check: FAILED: nvidia-smi lists a GPU, but torch cannot use it or dense_conv has no CUDA kernels"
  exit 1
fi

status=0
# step NAME LOG CMD...: runs CMD with its output on the terminal and in LOG; a failure sets the exit status.
step() {
  local name="$1" log="$2" start=$SECONDS rc
  shift 2
  echo "== $name (log: ${log#"$ROOT"/})"
  PYTHONUNBUFFERED=1 "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  echo "== $name: $([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - start)) s"
  [ "$rc" = 0 ] || status=1
  return "$rc"
}

step "GPU tests" "$OUT/tests.log" "$PY" -m pytest tests -q -ra -m gpu
tests_rc=$?
step "CUDA benchmark rows" "$OUT/bench.log" "$PY" bench/bench.py --cuda-only --out "$OUT"
step "per-kernel times" "$OUT/kernel_times.log" "$PY" tools/gpu_kernel_times.py --out "$OUT/kernel_times.json"
bench_args=()
[ -f "$OUT/bench.json" ] && bench_args=(--bench "$OUT/bench.json")
step "refit of the CUDA auto rule" "$OUT/refit.log" "$PY" tools/refit_cuda_auto.py "${bench_args[@]}" \
  --tests-exit-code "$tests_rc" --out "$ROOT/results/gpu_check.json"
echo "gpu_check: $([ "$status" = 0 ] && echo "all steps passed" || echo "FAILED: see the steps above"); results in" \
  "results/gpu_check.json and results/gpu_check/"
exit "$status"
