"""The emulated CUDA kernels under AddressSanitizer + UBSan and under ThreadSanitizer
(tests/emu/sanitize_main.cpp, no torch): every project kernel against a float64 reference under three
schedules, and planted bugs that the sanitizers must report with the CUDA block and thread. Under TSan
each CUDA thread is a fiber ordered only by barriers and warp ops, so a missing barrier is a data race."""
import os
import re
import shutil
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
    # dense forward, grad_impulse, grad_response: 6 shapes; octave_downsample forward, grad_input,
    # grad_filter (partials + reduce): 8 cases (levels 1..5, inputs shorter than the filter, leading
    # dims, several blocks per row, > 48 KiB of shared memory); FFT spectral products (product and
    # correlate): 5 spectrum shapes; dense_mix FFT mix, its gradients and the weight gradient (partials +
    # reduce): 5 shapes; per_sample forward, grad_impulse, grad_weight (partials + reduce): 6 shapes;
    # float and double, 3 schedules
    result = run(sanitized_binary, "kernels")
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "dense: 36 of 36 runs match" in result.stdout
    assert "octave: 48 of 48 runs match" in result.stdout
    assert "fft: 30 of 30 runs match" in result.stdout
    assert "mix: 30 of 30 runs match" in result.stdout
    assert "per_sample: 36 of 36 runs match" in result.stdout
    assert "180 of 180 kernel runs match" in result.stdout


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


# ---- ThreadSanitizer: every CUDA thread is a TSan fiber; only barriers and warp ops order them ------------

TSAN_FLAGS = ["-std=c++17", "-O1", "-g", "-fno-omit-frame-pointer", "-DDC_CUDA_EMULATOR", "-fsanitize=thread"]
TSAN_ENV = {"TSAN_OPTIONS": "halt_on_error=1"}  # exit at the first race (exit code 66)
TSAN_PROBE = r"""
#include <sanitizer/tsan_interface.h>
int shared;
int main() {
  void* self = __tsan_get_current_fiber();
  void* fiber = __tsan_create_fiber(0);
  __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
  shared = 1;  // no stack switch needed: the probe only checks that the runtime starts and has fibers
  __tsan_switch_to_fiber(self, __tsan_switch_to_fiber_no_sync);
  __tsan_destroy_fiber(fiber);
  return 0;
}
"""


def tsan_launcher():
    """The command prefix under which a TSan binary runs here ([] or setarch -R), or a skip reason."""
    probe = harness.BUILD_DIR / "tsan_probe.cpp"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(TSAN_PROBE)
    binary = str(probe) + ".bin"
    result = subprocess.run([harness.CXX, "-fsanitize=thread", str(probe), "-o", binary], capture_output=True, text=True)
    if result.returncode != 0:
        return None, (f"{harness.CXX} cannot build a -fsanitize=thread program with TSan fibers "
                      f"(libtsan or <sanitizer/tsan_interface.h> fibers missing): {result.stderr.strip()[-500:]}")
    errors = []
    # TSan refuses some address-space layouts (ASLR, high mmap_rnd_bits): then try without randomization.
    for prefix in ([], ["setarch", os.uname().machine, "-R"]):
        try:
            run_probe = subprocess.run([*prefix, binary], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            errors.append(f"{' '.join(prefix) or 'plain'}: {e}")
            continue
        if run_probe.returncode == 0:
            return prefix, None
        errors.append(f"{' '.join(prefix) or 'plain'}: exit {run_probe.returncode}: {run_probe.stderr.strip()[-300:]}")
    return None, "ThreadSanitizer programs cannot run on this machine: " + " | ".join(errors)


@pytest.fixture(scope="module")
def tsan_binary():
    launcher, reason = tsan_launcher()
    if reason:
        pytest.skip(reason)
    path = harness.BUILD_DIR / f"sanitize_main_tsan-{harness.source_hash(TSAN_FLAGS)}"
    return [*launcher, str(harness.compile_cpp(harness.EMU_DIR / "sanitize_main.cpp", path, TSAN_FLAGS))]


def run_tsan(command, *args):
    env = {**os.environ, **TSAN_ENV}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)


def line_of(path, text):
    """1-based line of the only line of `path` that contains `text`."""
    lines = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if text in line]
    assert len(lines) == 1, (path, text, lines)
    return lines[0]


def test_project_kernels_are_race_free_under_tsan(tsan_binary):
    # dense forward, grad_impulse and grad_response (3 small shapes) and octave_downsample forward,
    # grad_input, grad_filter (4 small cases), FFT spectral products (2 small shapes), the dense_mix FFT
    # mix and its gradients (2 small shapes), per_sample forward, grad_impulse and grad_weight (3 small
    # shapes), float and double, 3 schedules
    result = run_tsan(tsan_binary, "kernels", "small")
    assert "ThreadSanitizer" not in result.stderr, result.stderr[-6000:]
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "dense: 18 of 18 runs match" in result.stdout
    assert "octave: 24 of 24 runs match" in result.stdout
    assert "fft: 12 of 12 runs match" in result.stdout
    assert "mix: 12 of 12 runs match" in result.stdout
    assert "per_sample: 18 of 18 runs match" in result.stdout
    assert "84 of 84 kernel runs match" in result.stdout


def test_correct_reductions_are_race_free_under_tsan_even_after_emulator_errors(tsan_binary):
    # The planted reductions' correct variants (barriers and __syncwarp order every shared access), run
    # after a divergent barrier and a warp deadlock have abandoned fibers in the same process.
    result = run_tsan(tsan_binary, "after-errors")
    assert "ThreadSanitizer" not in result.stderr, result.stderr[-6000:]
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "2 of 2 emulator errors reported" in result.stdout
    assert result.stdout.count("sums correct") == 2, result.stdout


@pytest.mark.parametrize("bug,kernel,racing_line", [
    # Shared-memory tree reduction without __syncthreads between its levels.
    ("missing-syncthreads", "block_sum_kernel<true>", "if (t < stride) partial[t] += partial[t + stride];"),
    # Warp reduction through shared memory without __syncwarp between its steps.
    ("missing-syncwarp", "warp_sum_kernel<true>", "if (lane < offset) partial[t] += partial[t + offset];"),
])
def test_missing_barrier_is_a_tsan_data_race(tsan_binary, bug, kernel, racing_line):
    line = line_of(harness.EMU_DIR / "planted_bugs.cuh", racing_line)
    result = run_tsan(tsan_binary, "planted", bug)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"planted bug {bug} was not reported:\n{output[-3000:]}"
    kernel_re = re.escape(kernel)
    # Both accesses, at the kernel's exact source line, by two CUDA threads named by their fibers.
    assert re.search(r"WARNING: ThreadSanitizer: data race", output), output[-6000:]
    assert re.search(rf"(Read|Write) of size 4 at \S+ by thread T\d+:\s+#0 .*{kernel_re}.*planted_bugs\.cuh:{line}\b",
                     output), output[-6000:]
    assert re.search(rf"Previous (read|write) of size 4 at \S+ by thread T\d+:\s+#0 .*{kernel_re}.*"
                     rf"planted_bugs\.cuh:{line}\b", output), output[-6000:]
    assert re.search(rf"Location is global '.*{kernel_re}.*::partial'", output), output[-6000:]
    assert len(re.findall(r"Thread T\d+ 'block \(\d+,0,0\) thread \(\d+,0,0\)'", output)) >= 2, output[-6000:]
    assert re.search(rf"SUMMARY: ThreadSanitizer: data race \S*planted_bugs\.cuh:{line} in .*{kernel_re}", output)


def test_missing_barrier_in_the_real_forward_kernel_is_a_tsan_data_race(tsan_binary, tmp_path):
    """The project's dense forward kernel with the barrier that ends a tap chunk removed (a copy of the
    sources): the next chunk's staging overwrites the tiles that slower threads still read."""
    binary = harness.BUILD_DIR / f"sanitize_main_tsan_no_forward_barrier-{harness.source_hash(TSAN_FLAGS)}"
    if not binary.exists():
        (tmp_path / "tests").mkdir()
        shutil.copytree(harness.REPO / "csrc", tmp_path / "csrc")
        shutil.copytree(harness.EMU_DIR, tmp_path / "tests" / "emu")
        kernels = tmp_path / "csrc" / "cuda" / "dense_conv_kernels.cuh"
        text = kernels.read_text()
        forward = text.index("dense_forward_kernel(")
        chunk_end = "      __syncthreads();\n    }\n  }\n"  # the last barrier of the q0 loop
        cut = text.index(chunk_end, forward)
        kernels.write_text(text[:cut] + "      /* barrier removed */\n    }\n  }\n" + text[cut + len(chunk_end):])
        harness.compile_cpp(tmp_path / "tests" / "emu" / "sanitize_main.cpp", binary,
                            [*TSAN_FLAGS, f"-I{tmp_path / 'csrc'}", f"-I{tmp_path / 'tests' / 'emu'}"])
    result = run_tsan([*tsan_binary[:-1], str(binary)], "kernels", "small")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert re.search(r"WARNING: ThreadSanitizer: data race", output), output[-6000:]
    assert re.search(r"SUMMARY: ThreadSanitizer: data race \S*dense_conv_kernels\.cuh:\d+ in ", output), output[-6000:]
    # the racing read is in the forward kernel, or in a shared-load helper it inlines (load_shared_vec)
    assert re.search(r"#\d+ .*dense_forward_kernel<.*dense_conv_kernels\.cuh:\d+", output), output[-6000:]
