"""Every CUDA kernel instantiation that the ops' dispatch can reach is executed under the emulator.

The list is derived, not copied: the kernels are the `__global__` functions of csrc/cuda/*.cuh, and their
instantiations are those compiled into the emulator harness (tests/emu/harness.cpp), whose bindings call the
same host launch functions as csrc/cuda/*.cu for the same dtypes (test_harness_instantiates_the_dispatch_dtypes
checks it against the AT_DISPATCH macros); the launch functions' own template picks (responses per block,
channel blockings, workspace types) then instantiate the rest, as under nvcc.

test_every_kernel_instantiation_runs launches a sweep of small problems per op and dtype under one schedule,
each checked against its float64 reference (the schedule tests are in test_cuda_emulated*.py), and fails
naming every instantiation the sweep did not execute. It clears the emulator's record first, so it does not
depend on which other tests ran before it.
"""
import os
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from emu import harness  # noqa: E402
from test_cuda_emulated import check_dense_kernels, check_fft_kernels, check_octave_kernels  # noqa: E402
from test_cuda_emulated_per_sample import check_per_sample_kernels  # noqa: E402
from test_cuda_emulated_mix_fft import SPECTRA, check_fft_mix_kernels  # noqa: E402
from test_cuda_emulated_nonfinite import DENSE_SHAPES as NONFINITE_DENSE  # noqa: E402
from test_cuda_emulated_nonfinite import MIX_SHAPES as NONFINITE_MIX  # noqa: E402
from test_cuda_emulated_nonfinite import PER_SAMPLE_SHAPES as NONFINITE_PER_SAMPLE  # noqa: E402
from test_cuda_emulated_nonfinite import run_dense as check_nonfinite_dense  # noqa: E402
from test_cuda_emulated_nonfinite import run_mix as check_nonfinite_mix  # noqa: E402
from test_cuda_emulated_nonfinite import run_per_sample as check_nonfinite_per_sample  # noqa: E402
from test_cuda_emulated_wmma import check_wmma_forward  # noqa: E402

CUDA_DIR = harness.REPO / "csrc" / "cuda"
ALL_DTYPES = (torch.float32, torch.float64) + harness.HALF_DTYPES
# The scalar types that each dtype helper of harness.cpp instantiates, by the extra types (beyond float and
# double) of the AT_DISPATCH_FLOATING_TYPES[_AND<n>] macro it mirrors.
HARNESS_HELPERS = {"with_scalar_type": (), "with_scalar_type_and_half": ("kBFloat16", "kHalf")}


def kernel_names():
    """Names of the `__global__` functions declared in csrc/cuda/*.cuh."""
    names = set()
    for header in CUDA_DIR.glob("*.cuh"):
        names |= set(re.findall(r"__global__\s+void\s+(?:__launch_bounds__\s*\([^()]*\)\s*)?(\w+)\s*\(",
                                header.read_text()))
    return names


def short_name(function):
    """'void dc::k<float, 4>(float const*, ...)' -> 'dc::k<float, 4>' (the arguments can hold parentheses)."""
    text = function.removeprefix("void ")
    name = re.match(r"[\w:]*", text).group(0)
    if text[len(name):].startswith("<"):
        depth = 0
        for end, c in enumerate(text[len(name):], start=len(name)):
            depth += {"<": 1, ">": -1}.get(c, 0)
            if depth == 0:
                return text[:end + 1]
    return name


def kernel_instantiations(functions):
    """The instantiations of csrc/cuda's kernels among demangled function names (short form)."""
    kernels = kernel_names()
    found = set()
    for function in functions:
        if not function.startswith("void dc::"):  # kernels return void; the project's are in namespace dc
            continue
        name = short_name(function)
        if name.split("<")[0].split("::")[-1] in kernels:
            found.add(name)
    return found


def test_the_kernel_list_is_found():
    """The source parse and the symbol table agree on a few known names (guards the two parsers)."""
    assert {"dense_forward_kernel", "fft_correlate_kernel", "octave_backward_kernel",
            "per_sample_grad_weight_partial_kernel"} <= kernel_names()
    compiled = kernel_instantiations(harness.defined_functions())
    assert {"dc::dense_forward_kernel<float, 4>", "dc::dense_forward_wmma_kernel<c10::Half>",
            "dc::oct::octave_backward_kernel<c10::BFloat16, float, c10::BFloat16>",
            "dc::per_sample_tiled_kernel<double, 2, (dc::PerSampleDir)1>"} <= compiled
    # every kernel of the headers is instantiated by some binding
    assert {name.split("<")[0].split("::")[-1] for name in compiled} == kernel_names()
    # and every kernel is in a header the emulator compiles: none in the ATen glue
    assert not [source.name for source in CUDA_DIR.glob("*.cu") if "__global__" in source.read_text()]


def matching_paren(text, open_index):
    depth = 0
    for i in range(open_index, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError("unbalanced parentheses")


def dispatched_launches():
    """launch function -> extra scalar types of the AT_DISPATCH macro(s) around its calls in csrc/cuda/*.cu."""
    launches = {}
    for source in sorted(CUDA_DIR.glob("*.cu")):
        # without comments, and string literals emptied: the parentheses left are the code's
        text = re.sub(r'"(?:\\.|[^"\\])*"', '""', re.sub(r"//[^\n]*", "", source.read_text()))
        for m in re.finditer(r"\bAT_DISPATCH_\w+\(", text):
            macro = m.group(0)[:-1]
            assert re.fullmatch(r"AT_DISPATCH_FLOATING_TYPES(_AND\d)?", macro), (
                f"{source.name}: {macro} has no mirror among harness.cpp's dtype helpers: add one")
            body = text[m.end() - 1:matching_paren(text, m.end() - 1)]
            extras = tuple(sorted(re.findall(r"\bat::(k\w+)", body.split('"')[0])))  # before the name string
            for launch in re.findall(r"\b(launch_\w+)<scalar_t>", body):
                assert launches.setdefault(launch, extras) == extras, f"{launch} is dispatched for two type lists"
    return launches


def harness_launches():
    """launch function -> the dtype helper of the harness binding that calls it."""
    text = (harness.EMU_DIR / "harness.cpp").read_text()
    launches = {}
    for binding in text.split("DC_EMU_BINDING(")[1:]:
        helper = re.search(r"\b(with_scalar_type\w*)\(dtype", binding)
        for launch in re.findall(r"\b(launch_\w+)<T>", binding):
            launches[launch] = helper.group(1) if helper else None
    return launches


def test_harness_instantiates_the_dispatch_dtypes():
    """Each launch function the CUDA ops dispatch has a harness binding for exactly the dispatched dtypes."""
    dispatched, bound = dispatched_launches(), harness_launches()
    assert dispatched, "no AT_DISPATCH in csrc/cuda/*.cu found: the parse is stale"
    for launch, extras in dispatched.items():
        assert launch in bound, f"{launch} (csrc/cuda) has no binding in tests/emu/harness.cpp"
        assert HARNESS_HELPERS.get(bound[launch]) == extras, (
            f"{launch}: csrc/cuda dispatches float, double and {extras}, the harness binding uses {bound[launch]}")


# ---- the sweep: small problems that reach every template pick ----

# dense (B, Ci, Cr, Hi, Wi, Hr, Wr): Cr = 1..9 reaches every responses-per-block of the forward and grad_response
# (float16 and bfloat16 run the tensor-core forward); float32 in TF32 runs it too (one shape: the kernel has no picks)
DENSE_SWEEP = [(1, 2, cr, 5, 9, 3, 4) for cr in range(1, 10)]
DENSE_TF32_SWEEP = [(1, 2, 5, 5, 9, 3, 4)]
# per_sample (B, L, Ci, Hi, Wi, Hr, Wr): L in {1, 2, 4, 8}, Ci in {1, 2, 4} gives every grad_weight channel
# blocking, L = Ci in 3, 5..8 the other forward / grad_impulse channel counts per block
PER_SAMPLE_SWEEP = [(1, L, Ci, 5, 9, 3, 4) for L in (1, 2, 4, 8) for Ci in (1, 2, 4)]
PER_SAMPLE_SWEEP += [(1, n, n, 5, 9, 3, 4) for n in (3, 5, 6, 7, 8)]
# octave (rows, T, taps, levels): 1 level reads the incoming gradient only, 2 and 3 chain float workspaces
OCTAVE_SWEEP = [(2, 37, 7, levels) for levels in (1, 2, 3)]
FFT_SWEEP = [(1, 2, 3, 37), (1, 2, 9, 37)]  # (nb, Ci, Cr, K): one and two passes of the backward's responses


def run_sweep():
    for dtype in ALL_DTYPES:
        for shape in DENSE_SWEEP:
            check_dense_kernels(shape, dtype)
        for shape in PER_SAMPLE_SWEEP:
            check_per_sample_kernels(shape, dtype)
        for rows, T, taps, levels in OCTAVE_SWEEP:
            g = torch.Generator().manual_seed(T)
            x = torch.randn(rows, T, generator=g, dtype=torch.float64)
            f = torch.randn(taps, generator=g, dtype=torch.float64)
            check_octave_kernels(x, f, levels, dtype, g)
        # the exact path for NaN / inf samples (nonfinite_kernels.cuh: causal, correlation and taps sums; the mix's)
        check_nonfinite_dense(NONFINITE_DENSE["odd"], dtype)
        check_nonfinite_per_sample(NONFINITE_PER_SAMPLE["odd"], dtype)
        check_nonfinite_mix(NONFINITE_MIX["odd"], dtype)
    for shape in DENSE_TF32_SWEEP:
        check_wmma_forward(shape, torch.float32)
    for dtype in (torch.float32, torch.float64):  # the FFT ops transform 16-bit inputs in float32
        for shape in FFT_SWEEP:
            check_fft_kernels(shape, dtype)
        for shape in SPECTRA.values():
            check_fft_mix_kernels(shape, dtype)


def test_every_kernel_instantiation_runs():
    compiled = kernel_instantiations(harness.defined_functions())
    harness.set_schedule("forward")
    harness.clear_executed_kernels()
    run_sweep()
    executed = kernel_instantiations(harness.executed_kernels())
    never = sorted(compiled - executed)
    assert not never, ("kernel instantiations compiled but never executed under the emulator (extend the sweep "
                       "of tests/test_cuda_emulated_coverage.py):\n  " + "\n  ".join(never))
    assert executed <= compiled
