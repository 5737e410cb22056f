"""The emulated CUDA kernels under AddressSanitizer + UBSan (tests/emu/sanitize_main.cpp, no torch):
every project kernel against a float64 reference under three schedules, and planted bugs that the
sanitizers must report with the CUDA block and thread."""
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from emu import harness  # noqa: E402

SANITIZE_FLAGS = ["-std=c++17", "-O1", "-g", "-fno-omit-frame-pointer", "-DDC_CUDA_EMULATOR",
                  "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"}


def sanitizer_runtimes_missing():
    probe = harness.BUILD_DIR / "sanitizer_probe.cpp"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("int main() { return 0; }\n")
    result = subprocess.run([harness.CXX, "-fsanitize=address,undefined", str(probe), "-o", str(probe) + ".bin"],
                            capture_output=True, text=True)
    return result.returncode != 0 and (result.stderr.strip().splitlines() or ["?"])[-1]


@pytest.fixture(scope="module")
def sanitized_binary():
    missing = sanitizer_runtimes_missing()
    if missing:
        pytest.skip(f"{harness.CXX} cannot link -fsanitize=address,undefined (libasan/libubsan missing): {missing}")
    path = harness.BUILD_DIR / f"sanitize_main-{harness.source_hash(SANITIZE_FLAGS)}"
    return harness.compile_cpp(harness.EMU_DIR / "sanitize_main.cpp", path, SANITIZE_FLAGS)


def run(binary, *args):
    env = {**os.environ, **SANITIZER_ENV}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=300)


def test_project_kernels_are_clean_under_asan_ubsan(sanitized_binary):
    result = run(sanitized_binary, "kernels")
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "36 of 36 kernel runs match" in result.stdout


@pytest.mark.parametrize("bug,report", [
    # The last block's halo load reads past the end of the input tensor.
    ("halo-past-input", r"AddressSanitizer: heap-buffer-overflow.*READ of size 4.*tile_pair_sum_kernel<2>"),
    # Off-by-one index into a static __shared__ array.
    ("index-past-tile", r"runtime error: index 129 out of bounds for type 'float \[129\]'"),
    # float4 loads from a pointer that is only 4-byte aligned.
    ("misaligned-float4", r"runtime error: .*misaligned address .* 'const struct float4', which requires 16 byte"),
])
def test_planted_bug_is_reported(sanitized_binary, bug, report):
    result = run(sanitized_binary, "planted", bug)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"planted bug {bug} was not reported:\n{output[-3000:]}"
    assert re.search(report, output, re.S), output[-3000:]
    assert re.search(r"dc_emu: sanitizer report from kernel .* block \(\d+,0,0\) thread \(\d+,0,0\)", output)
