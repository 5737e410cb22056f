"""Test-only: runs the project's CUDA kernel headers on the CPU through the emulator (tests/emu/cuda_emu.h).

`library()` compiles tests/emu/harness.cpp with g++ -DDC_CUDA_EMULATOR into build/emu/ (cached by a hash
of every source it depends on) and loads it with ctypes. The functions below take CPU tensors, poison
the outputs (NaN, or all-ones bits for integers) before every launch, run one host launch function
under the current schedule, and raise RuntimeError with the emulator's message on any error.
"""
import ctypes
import hashlib
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

from dense_conv._shapes import octave_packed_length

REPO = Path(__file__).resolve().parents[2]
EMU_DIR = Path(__file__).resolve().parent
BUILD_DIR = REPO / "build" / "emu"
CXX = os.environ.get("CXX", "g++")
# torch's headers give the harness c10::Half and c10::BFloat16, the extension's own 16-bit types.
TORCH_INCLUDE = Path(torch.__file__).resolve().parent / "include"
HARNESS_FLAGS = ["-std=c++17", "-O2", "-fPIC", "-shared", "-DDC_CUDA_EMULATOR", f"-I{TORCH_INCLUDE}"]

# dc_emu::Order
SCHEDULES = {"forward": 0, "reverse": 1, "random": 2}
# The schedules every kernel test runs under (the `schedule` fixture of tests/conftest.py): (order, seed).
TEST_SCHEDULES = [("forward", 0), ("reverse", 0), ("random", 7)]
# Error bound of the kernels against the float64 references (on the inputs rounded to the dtype), relative
# to the largest reference value (sums of hundreds of products cancel). float16 / bfloat16 accumulate in
# float32 (AccType), so their bound is float32's plus the one rounding of each output to the dtype: at most
# half an ulp, i.e. the unit roundoff u (2**-11 for float16, 2**-8 for bfloat16) times |output| <= the max.
UNIT_ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
TOLERANCE = {torch.float32: 2e-6, torch.float64: 1e-13}
TOLERANCE.update({dtype: u + TOLERANCE[torch.float32] for dtype, u in UNIT_ROUNDOFF.items()})
# with_scalar_type (float32, float64) and with_scalar_type_and_half (all four) of harness.cpp
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
HALF_DTYPES = (torch.float16, torch.bfloat16)
DTYPE_ID = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}


def shape_dtype_cases(shapes, half_shapes):
    """pytest params (shape, dtype): every shape of the dict `shapes` in float32 and float64, the names in
    `half_shapes` also in float16 and bfloat16 (the 16-bit kernels differ only in their loads and stores)."""
    return ([pytest.param(shapes[name], dtype, id=f"{name}-{DTYPE_ID[dtype]}")
             for name in shapes for dtype in (torch.float32, torch.float64)]
            + [pytest.param(shapes[name], dtype, id=f"{name}-{DTYPE_ID[dtype]}")
               for name in half_shapes for dtype in HALF_DTYPES])


def emulator_sources():
    """Every file whose change must rebuild the harness."""
    files = [REPO / "csrc" / "shapes.h"] + sorted((REPO / "csrc" / "cuda").glob("*.cuh"))
    files += sorted(EMU_DIR.glob("*.h")) + sorted(EMU_DIR.glob("*.cuh")) + sorted(EMU_DIR.glob("*.cpp"))
    return [f for f in files if f.is_file()]


def source_hash(extra=()):
    h = hashlib.sha256()
    for f in emulator_sources():
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for item in extra:
        h.update(str(item).encode())
    return h.hexdigest()[:16]


def compile_cpp(source, output, flags):
    """Compiles `source` to `output` unless it exists; the rename keeps concurrent runs safe."""
    output = Path(output)
    if output.exists():
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, suffix=output.suffix)
    os.close(fd)
    cmd = [CXX, *flags, f"-I{REPO / 'csrc'}", f"-I{EMU_DIR}", str(source), "-o", tmp]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"compiling {source} failed:\n{' '.join(cmd)}\n{result.stderr[-6000:]}")
    os.replace(tmp, output)
    return output


# The counting build (tests/emu/counters.h): every load and store of compiled code calls the emulator's
# __asan_*_noabort hooks, which count the CUDA threads' shared and global accesses; every basic block starts
# with a call of __sanitizer_cov_trace_pc, which counts the blocks they enter (-> multiplies, below).
# -fno-gnu-unique: the kernels' static __shared__ arrays (template statics) stay this library's own, not
# unified process-wide with the normal harness's copies (whose poisoning would then miss them).
# -mf16c: c10::Half converts with one instruction (its portable conversion multiplies, which would be counted);
# -mfma: fmaf / __fmaf_rn become one FMA instruction, counted like a multiply (ISO C++ mode keeps a * b + c
# uncontracted, so no value changes).
COUNTING_FLAGS = HARNESS_FLAGS + ["-DDC_EMU_COUNT", "-fno-gnu-unique", "-fsanitize=kernel-address",
                                  "--param", "asan-instrumentation-with-call-threshold=0",
                                  "--param", "asan-stack=0", "--param", "asan-globals=0",
                                  "-fsanitize-coverage=trace-pc", "-mf16c", "-mfma"]

_libraries = {}
_counting = False  # inside `counting()`: call() runs the counting build


def library(counting_build=None):
    counting_build = _counting if counting_build is None else counting_build
    flags = COUNTING_FLAGS if counting_build else HARNESS_FLAGS
    if counting_build not in _libraries:
        name = "libdc_emu_counting" if counting_build else "libdc_emu_harness"
        path = BUILD_DIR / f"{name}-{source_hash(flags + [torch.__version__])}.so"
        lib = ctypes.CDLL(str(compile_cpp(EMU_DIR / "harness.cpp", path, flags)))
        lib.dc_emu_last_error.restype = ctypes.c_char_p
        lib.dc_emu_executed_kernels.restype = ctypes.c_char_p
        lib.dc_emu_defined_functions.restype = ctypes.c_char_p
        lib.dc_emu_set_schedule.argtypes = [ctypes.c_int, ctypes.c_uint64]
        if counting_build:
            lib.dc_emu_count_results.restype = ctypes.c_char_p
            lib.dc_emu_count_global.argtypes = [ctypes.c_void_p, ctypes.c_int64]
            lib.path = path
        _libraries[counting_build] = lib
    return _libraries[counting_build]


# Floating-point multiplies of x86 code: (v)mul{ss,sd,ps,pd} and the FMA forms; a packed one counts its lanes.
_MULTIPLY = re.compile(r"^v?(?:mul|f(?:n)?m(?:add|sub)(?:132|213|231))(ss|sd|ps|pd)$")
_LANE_BITS = {"ss": 0, "sd": 0, "ps": 32, "pd": 64}
# Functions whose multiplies are not the kernels' own: the emulator and the libraries it runs on.
_NOT_KERNEL_NAMESPACES = ("dc_emu::", "nvcuda::", "std::", "c10::", "__gnu_cxx::")


def _is_kernel_code(function):
    """Whether an objdump function label (demangled) is kernel code: its qualified name, template arguments and
    return type removed, is in none of _NOT_KERNEL_NAMESPACES."""
    name = function.split("(")[0]
    while re.search(r"<[^<>]*>", name):
        name = re.sub(r"<[^<>]*>", "", name)
    return not name.split()[-1].startswith(_NOT_KERNEL_NAMESPACES) if name.split() else False


def basic_block_multiplies(lib_path):
    """{offset: multiplies} for the counting build at lib_path: each basic block (named by the return address of
    its __sanitizer_cov_trace_pc call) with the floating-point multiply lanes up to the next such call, in
    functions of kernel code (not the emulator's, not std's or c10's). Cached next to the library."""
    cache = Path(str(lib_path) + ".multiplies.json")
    if cache.exists():
        return {int(k): v for k, v in json.loads(cache.read_text()).items()}
    text = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", str(lib_path)], capture_output=True,
                          text=True, check=True).stdout
    table, block, kernel_code = {}, None, False
    for line in text.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            block, kernel_code = None, _is_kernel_code(header.group(1))
            continue
        insn = re.match(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if not insn:
            continue
        mnemonic, operands = insn.group(2), insn.group(3)
        if mnemonic == "call" and "<__sanitizer_cov_trace_pc" in operands:
            block = None  # the block starts at the next instruction
            continue
        if block is None:
            block = int(insn.group(1), 16)
            if kernel_code:
                table[block] = 0
        m = _MULTIPLY.match(mnemonic)
        if m and kernel_code:
            bits = _LANE_BITS[m.group(1)]
            width = 512 if "%zmm" in operands else 256 if "%ymm" in operands else 128
            table[block] += width // bits if bits else 1
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table))
    os.replace(tmp, cache)  # concurrent runs never read half a file
    return table


COUNT_FIELDS = ("grid", "block", "dynamic_smem_bytes", "blocks_total", "blocks_emulated", "shared_requests",
                "shared_wavefronts", "global_load_requests", "global_load_sectors", "global_store_requests",
                "global_store_sectors", "dram_sectors", "fma_tensor", "shared_conflict_free_wavefronts")


class counting:
    """Context: the emulated launches inside it run in the counting build and are counted. `sample` > 0
    runs, per grid dimension longer than `sample`, that many block indices (edges and spread interior
    ones, weighted by the blocks they stand for) and extrapolates; 0 runs every block. After the block,
    `launches` holds one dict per launch: kernel, grid, block, dynamic_smem_bytes, blocks_total,
    blocks_emulated, shared_requests, shared_wavefronts, global_{load,store}_{requests,sectors},
    dram_sectors, shared_conflict_free_wavefronts (the wavefronts without bank conflicts: one per phase of the
    request with active lanes), fma_tensor (WMMA multiply-adds), fma_executed (floating-point multiplies executed by the
    kernel's threads, FMA instructions included, plus fma_tensor) (totals for the full grid, rounded to
    integers when sampled)."""

    def __init__(self, sample=0):
        self.sample = sample
        self.launches = []

    def __enter__(self):
        global _counting
        _counting = True
        call("dc_emu_count_start", self.sample)
        return self

    def __exit__(self, *exc):
        global _counting
        lib = library(True)
        multiplies = basic_block_multiplies(lib.path)
        for line in lib.dc_emu_count_results().decode().splitlines():
            kernel, *values, entries = line.split("\t")
            launch = {"kernel": kernel}
            for field, value in zip(COUNT_FIELDS, values):
                numbers = [int(round(float(v))) for v in value.split()]
                launch[field] = numbers if field in ("grid", "block") else numbers[0]
            executed = 0.0
            for entry in entries.split():
                offset, count = entry.split(":")
                executed += multiplies.get(int(offset, 16), 0) * float(count)
            launch["fma_executed"] = int(round(executed)) + launch["fma_tensor"]
            self.launches.append(launch)
        call("dc_emu_count_stop")
        _counting = False
        return False


def call(name, *args):
    """Calls a binding; tensors are passed as data pointers, Python ints as C ints."""
    lib = library()
    if _counting:  # the tensors below are the launch's global memory, nothing else
        lib.dc_emu_count_reset_globals()
    c_args = []
    for a in args:
        if isinstance(a, torch.Tensor):
            assert a.device.type == "cpu" and a.is_contiguous(), "the emulator takes contiguous CPU tensors"
            c_args.append(ctypes.c_void_p(a.data_ptr()))
            if _counting:  # the tensors are the launch's global memory
                lib.dc_emu_count_global(a.data_ptr(), a.numel() * a.element_size())
        elif isinstance(a, ctypes._SimpleCData) or isinstance(a, ctypes.Array):
            c_args.append(a)
        else:
            c_args.append(ctypes.c_int(a))
    if getattr(lib, name)(*c_args) != 0:
        raise RuntimeError(lib.dc_emu_last_error().decode())


def access_probe(vector_width, shared, nthreads, stride):
    """Planted accesses (selftest_kernels.cuh): each thread loads one float / float2 / float4
    (vector_width 1, 2, 4) at index t * stride of shared memory or of a global buffer, and stores it."""
    inp = torch.zeros(nthreads * stride * vector_width + 4, dtype=torch.float32)
    out = torch.zeros(nthreads * vector_width, dtype=torch.float32)
    call("dc_emu_access_probe", vector_width, int(shared), inp, out, nthreads, stride)


def multiply_add_probe(dtype, nblocks, nthreads, n):
    """Planted multiply-adds (selftest_kernels.cuh): each of nblocks x nthreads threads does n multiply-adds and
    one fused multiply-add intrinsic; returns out [nblocks * nthreads] = the threads' sums."""
    a = torch.arange(1, n + 1, dtype=dtype)
    b = torch.full((n,), 0.5, dtype=dtype)
    out = poisoned((nblocks * nthreads,), dtype)
    call("dc_emu_multiply_add_probe", _dtype_code(a, b, out), a, b, out, nblocks, nthreads, n)
    return out


def set_schedule(schedule, seed=0):
    """schedule: 'forward', 'reverse' or 'random' (with a seed)."""
    call("dc_emu_set_schedule", ctypes.c_int(SCHEDULES[schedule]), ctypes.c_uint64(seed))


def under_each_schedule(fn):
    """[fn() under each of TEST_SCHEDULES], then the forward schedule again (also when fn raises): for the tests
    that results are bitwise the same in every thread order."""
    try:
        results = []
        for schedule in TEST_SCHEDULES:
            set_schedule(*schedule)
            results.append(fn())
        return results
    finally:
        set_schedule("forward")


def executed_kernels():
    """Demangled names of the kernels launched since the last clear_executed_kernels()."""
    return set(library().dc_emu_executed_kernels().decode().splitlines())


def clear_executed_kernels():
    call("dc_emu_clear_executed_kernels")


def defined_functions():
    """Demangled names of every function compiled into the harness library."""
    return set(library().dc_emu_defined_functions().decode().splitlines())


def poisoned(shape, dtype):
    """A fresh output buffer whose never-written elements read as NaN (-1 for integers)."""
    if dtype.is_floating_point:
        return torch.full(shape, float("nan"), dtype=dtype)
    return torch.full(shape, -1, dtype=dtype)


def _dtype_code(*tensors):
    dtype = tensors[0].dtype
    assert all(t.dtype == dtype for t in tensors), "mixed dtypes"
    return DTYPE_CODES[dtype]


def conv_sizes(B, Ci, Cr, Hi, Wi, Hr, Wr):
    """The dc::ConvSizes argument of the dense bindings."""
    return (ctypes.c_int64 * 7)(B, Ci, Cr, Hi, Wi, Hr, Wr)


# ---- csrc/cuda/dense_conv_kernels.cuh ----------------------------------------------------------

def dense_forward(response, impulse, allow_tf32=False):
    """The op's forward: float16 / bfloat16 on the tensor-core kernel, float32 too when `allow_tf32`."""
    B, Cr, Hr, Wr = response.shape
    _, Ci, Hi, Wi = impulse.shape
    out = poisoned((B, Ci * Cr, Hi, Wi), impulse.dtype)
    call("dc_emu_dense_forward", _dtype_code(response, impulse), response, impulse, out,
         conv_sizes(B, Ci, Cr, Hi, Wi, Hr, Wr), ctypes.c_int(int(allow_tf32)))
    return out


def round_to_tf32(x):
    """The emulator's nvcuda::wmma::__float_to_tf32 of every element of the float32 tensor `x`."""
    x = x.contiguous()
    out = torch.empty_like(x)
    call("dc_emu_float_to_tf32", x, out, x.numel())
    return out


def dense_grad_impulse(grad_out, response):
    B, Cr, Hr, Wr = response.shape
    _, CiCr, Hi, Wi = grad_out.shape
    Ci = CiCr // Cr
    grad_impulse = poisoned((B, Ci, Hi, Wi), grad_out.dtype)
    call("dc_emu_dense_grad_impulse", _dtype_code(grad_out, response), grad_out, response, grad_impulse,
         conv_sizes(B, Ci, Cr, Hi, Wi, Hr, Wr))
    return grad_impulse


def dense_grad_response(grad_out, impulse, Hr, Wr):
    B, Ci, Hi, Wi = impulse.shape
    Cr = grad_out.shape[1] // Ci
    grad_response = poisoned((B, Cr, Hr, Wr), grad_out.dtype)
    call("dc_emu_dense_grad_response", _dtype_code(grad_out, impulse), grad_out, impulse, grad_response,
         conv_sizes(B, Ci, Cr, Hi, Wi, Hr, Wr))
    return grad_response


# ---- csrc/cuda/per_sample_conv_kernels.cuh ---------------------------------------------------

def per_sample_sizes(B, L, Ci, Hi, Wi, Hr, Wr):
    """The dc::PerSampleSizes argument of the per_sample bindings."""
    return (ctypes.c_int64 * 7)(B, L, Ci, Hi, Wi, Hr, Wr)


def per_sample_forward(weight, impulse):
    """weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi] -> out [B, L, Hi, Wi]."""
    B, L, Ci, Hr, Wr = weight.shape
    Hi, Wi = impulse.shape[2:]
    out = poisoned((B, L, Hi, Wi), impulse.dtype)
    call("dc_emu_per_sample_forward", _dtype_code(weight, impulse), weight, impulse, out,
         per_sample_sizes(B, L, Ci, Hi, Wi, Hr, Wr))
    return out


def per_sample_grad_impulse(grad_out, weight):
    B, L, Ci, Hr, Wr = weight.shape
    Hi, Wi = grad_out.shape[2:]
    grad_impulse = poisoned((B, Ci, Hi, Wi), grad_out.dtype)
    call("dc_emu_per_sample_grad_impulse", _dtype_code(grad_out, weight), grad_out, weight, grad_impulse,
         per_sample_sizes(B, L, Ci, Hi, Wi, Hr, Wr))
    return grad_impulse


def _per_sample_plan(sizes):
    plan = (ctypes.c_int64 * 6)()
    call("dc_emu_per_sample_grad_weight_plan", sizes, plan)
    return tuple(plan)


def per_sample_grad_weight(grad_out, impulse, Hr, Wr):
    B, Ci, Hi, Wi = impulse.shape
    L = grad_out.shape[1]
    sizes = per_sample_sizes(B, L, Ci, Hi, Wi, Hr, Wr)
    grad_weight = poisoned((B, L, Ci, Hr, Wr), grad_out.dtype)
    # the exact size the launch uses, poisoned like every buffer
    workspace_bytes = _per_sample_plan(sizes)[5 if grad_out.dtype == torch.float64 else 4]  # float accumulators
    workspace = poisoned((max(1, workspace_bytes),), torch.uint8)
    call("dc_emu_per_sample_grad_weight", _dtype_code(grad_out, impulse), grad_out, impulse, grad_weight, workspace,
         sizes)
    return grad_weight


def per_sample_grad_weight_plan(B, L, Ci, Hi, Wi, Hr, Wr):
    """(row slabs, output channels per block, impulse channels per block, partial-sum blocks)."""
    return _per_sample_plan(per_sample_sizes(B, L, Ci, Hi, Wi, Hr, Wr))[:4]


# ---- csrc/cuda/nonfinite_kernels.cuh -----------------------------------------------------------

def nonfinite_checksums(result, inputs):
    """csrc/nonfinite.cpp's nonfinite_checksums (the per-sample check of both paths): [B] sums, float32
    (float64 for float64), of the slices [b] of `result` or of `inputs`, whichever have fewer elements; a
    sample is recomputed where its sum is non-finite."""
    B = result.shape[0]
    tensors = [result] if result.numel() <= sum(t.numel() for t in inputs) else inputs
    acc = torch.float64 if result.dtype == torch.float64 else torch.float32
    total = None
    for t in tensors:
        if t.numel() == 0:
            continue
        s = t.reshape(B, -1).sum(1, dtype=acc)
        total = s if total is None else total + s
    return total


def _exact(binding, op, first, second, result, checksum, sizes):
    """A copy of `result` with the samples whose checksum is non-finite recomputed by the definition."""
    acc = torch.float64 if result.dtype == torch.float64 else torch.float32
    assert checksum.dtype == acc and checksum.shape == (result.shape[0],), "checksum: [B] of the accumulation type"
    result = result.clone()
    call(binding, op, _dtype_code(first, second, result), first, second, result, checksum.contiguous(), sizes)
    return result


def exact_dense_forward(response, impulse, out, checksum):
    B, Cr, Hr, Wr = response.shape
    _, Ci, Hi, Wi = impulse.shape
    return _exact("dc_emu_exact_dense", 0, response, impulse, out, checksum, conv_sizes(B, Ci, Cr, Hi, Wi, Hr, Wr))


def exact_dense_grad_impulse(grad_out, response, grad_impulse, checksum):
    B, Cr, Hr, Wr = response.shape
    _, Ci, Hi, Wi = grad_impulse.shape
    return _exact("dc_emu_exact_dense", 1, grad_out, response, grad_impulse, checksum,
                  conv_sizes(B, Ci, Cr, Hi, Wi, Hr, Wr))


def exact_dense_grad_response(grad_out, impulse, grad_response, checksum):
    B, Cr, Hr, Wr = grad_response.shape
    _, Ci, Hi, Wi = impulse.shape
    return _exact("dc_emu_exact_dense", 2, grad_out, impulse, grad_response, checksum,
                  conv_sizes(B, Ci, Cr, Hi, Wi, Hr, Wr))


def exact_per_sample_forward(weight, impulse, out, checksum):
    B, L, Ci, Hr, Wr = weight.shape
    Hi, Wi = impulse.shape[2:]
    return _exact("dc_emu_exact_per_sample", 0, weight, impulse, out, checksum,
                  per_sample_sizes(B, L, Ci, Hi, Wi, Hr, Wr))


def exact_per_sample_grad_impulse(grad_out, weight, grad_impulse, checksum):
    B, L, Ci, Hr, Wr = weight.shape
    Hi, Wi = grad_impulse.shape[2:]
    return _exact("dc_emu_exact_per_sample", 1, grad_out, weight, grad_impulse, checksum,
                  per_sample_sizes(B, L, Ci, Hi, Wi, Hr, Wr))


def exact_per_sample_grad_weight(grad_out, impulse, grad_weight, checksum):
    B, L, Ci, Hr, Wr = grad_weight.shape
    Hi, Wi = impulse.shape[2:]
    return _exact("dc_emu_exact_per_sample", 2, grad_out, impulse, grad_weight, checksum,
                  per_sample_sizes(B, L, Ci, Hi, Wi, Hr, Wr))



def nonfinite_mix_checksums(tensors, weight):
    """csrc/nonfinite.cpp's nonfinite_mix_checksums: the sums of the samples' slices of `tensors` (each in its
    accumulation dtype), plus the weight's sum (a non-finite weight flags every sample), in the weight's."""
    acc = torch.float64 if weight.dtype == torch.float64 else torch.float32
    B = tensors[0].shape[0]
    total = torch.zeros(B, dtype=acc)
    for t in tensors:
        if t.numel():
            total += t.reshape(B, -1).sum(1, dtype=torch.float64 if t.dtype == torch.float64 else torch.float32)
    return total + weight.sum(dtype=acc)


def _mix_exact_sizes(response, impulse, weight):
    B, Cr, Hr, Wr = response.shape
    _, Ci, Hi, Wi = impulse.shape
    assert tuple(weight.shape[1:]) == (Ci, Cr)
    return (ctypes.c_int64 * 8)(B, Ci, Cr, Hi, Wi, Hr, Wr, weight.shape[0])


def _check_checksum(checksum, dtype, B):
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert checksum.dtype == acc and checksum.shape == (B,), "checksum: [B] of the accumulation type"


def exact_mix_forward(response, impulse, weight, out, checksum):
    """A copy of out [B, L, Hi, Wi] with the flagged samples recomputed by the mix's definition."""
    _check_checksum(checksum, out.dtype, out.shape[0])
    out = out.clone()
    call("dc_emu_exact_mix_forward", _dtype_code(response, impulse, weight, out), response, impulse, weight, out,
         checksum.contiguous(), _mix_exact_sizes(response, impulse, weight))
    return out


def exact_mix_backward(grad_out, response, impulse, weight, grad_response, grad_impulse, grad_weight_per_sample,
                       checksum):
    """Copies of (grad_response, grad_impulse, grad_weight_per_sample [B, L, Ci, Cr] float64) with the flagged
    samples recomputed by the mix's definition."""
    _check_checksum(checksum, grad_out.dtype, grad_out.shape[0])
    assert grad_weight_per_sample.dtype == torch.float64
    gr, gi, gw = grad_response.clone(), grad_impulse.clone(), grad_weight_per_sample.clone()
    call("dc_emu_exact_mix_backward", _dtype_code(grad_out, response, impulse, weight, gr, gi), grad_out, response,
         impulse, weight, gr, gi, gw, checksum.contiguous(), _mix_exact_sizes(response, impulse, weight))
    return gr, gi, gw

# ---- csrc/cuda/fft_conv_kernels.cuh ------------------------------------------------------------

COMPLEX_REAL = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def _spectrum_code(*tensors):
    dtype = tensors[0].dtype
    assert all(t.dtype == dtype for t in tensors), "mixed dtypes"
    return DTYPE_CODES[COMPLEX_REAL[dtype]]


def _poisoned_complex(shape, dtype):
    return torch.view_as_complex(poisoned((*shape, 2), COMPLEX_REAL[dtype]))


def fft_product(A, R):
    """A [nb, Ci, K], R [nb, Cr, K] (complex64 / complex128) -> P [nb, Ci*Cr, K], P[b, i*Cr+r] = A[b,i] R[b,r]."""
    nb, Ci, K = A.shape
    Cr = R.shape[1]
    P = _poisoned_complex((nb, Ci * Cr, K), A.dtype)
    call("dc_emu_fft_product", _spectrum_code(A, R), A, R, P, (ctypes.c_int64 * 4)(nb, Ci, Cr, K))
    return P


def fft_correlate(G, A, R, gr_scale=1.0):
    """G [nb, Ci*Cr, K], A [nb, Ci, K], R [nb, Cr, K] -> (GI [nb, Ci, K], GR [nb, Cr, K] times gr_scale)."""
    nb, Ci, K = A.shape
    Cr = R.shape[1]
    GI = _poisoned_complex((nb, Ci, K), A.dtype)
    GR = _poisoned_complex((nb, Cr, K), A.dtype)
    call("dc_emu_fft_correlate", _spectrum_code(G, A, R), G, A, R, GI, GR, ctypes.c_double(gr_scale),
         (ctypes.c_int64 * 4)(nb, Ci, Cr, K))
    return GI, GR


# ---- csrc/cuda/fft_mix_kernels.cuh -------------------------------------------------------------

def _mix_sizes(X, Hs, G_or_Y, H, W):
    nb, Ci, K = X.shape
    Cr, L = Hs.shape[1], G_or_Y.shape[1]
    assert K == H * (W // 2 + 1), "spectra of K = H * (W // 2 + 1) bins"
    return (ctypes.c_int64 * 6)(nb, L, Ci, Cr, H, W)


def fft_mix_forward(X, Hs, a, H, W):
    """X [nb, Ci, K], Hs [nb, Cr, K] (complex64 / complex128), a [L, Ci, Cr] real -> Y [nb, L, K],
    Y[b, l] = sum_j X[b, j] sum_k a[l, j, k] Hs[b, k]."""
    assert a.dtype == COMPLEX_REAL[X.dtype], "the weight has the spectra's real dtype"
    nb, _, K = X.shape
    Y = _poisoned_complex((nb, a.shape[0], K), X.dtype)
    call("dc_emu_fft_mix_forward", _spectrum_code(X, Hs), X, Hs, a, Y, _mix_sizes(X, Hs, Y, H, W))
    return Y


def fft_mix_backward(X, Hs, G, a, H, W, scale, gh_scale=1.0):
    """-> (GX [nb, Ci, K], GH [nb, Cr, K] times gh_scale, gw [nb, L, Ci, Cr] float64 times scale): see
    csrc/cuda/fft_mix_kernels.cuh."""
    assert a.dtype == COMPLEX_REAL[X.dtype], "the weight has the spectra's real dtype"
    nb, Ci, K = X.shape
    Cr = Hs.shape[1]
    GX = _poisoned_complex((nb, Ci, K), X.dtype)
    GH = _poisoned_complex((nb, Cr, K), X.dtype)
    gw = poisoned((nb, *a.shape), torch.float64)
    call("dc_emu_fft_mix_backward", _spectrum_code(X, Hs, G), X, Hs, G, a, GX, GH, gw, ctypes.c_double(scale),
         ctypes.c_double(gh_scale), _mix_sizes(X, Hs, G, H, W))
    return GX, GH, gw


# ---- csrc/cuda/octave_downsample_kernels.cuh ---------------------------------------------------

def octave_sizes(rows, T, taps, levels):
    """The {rows, T, taps, levels} argument of the octave bindings."""
    return (ctypes.c_int64 * 4)(rows, T, taps, levels)


def _octave_buffers(sz, dtype):
    """Poisoned workspace and grad_filter partials, of the element counts the launch functions use."""
    counts = (ctypes.c_int64 * 2)()
    call("dc_emu_octave_buffer_sizes", sz, counts)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    return tuple(poisoned((max(1, n),), acc) for n in counts)


def octave_forward(x, f, levels):
    """x [rows, T] -> packed [rows, sum of level lengths]."""
    rows, T = x.shape
    out = poisoned((rows, octave_packed_length(T, levels)), x.dtype)
    call("dc_emu_octave_forward", _dtype_code(x, f), x, f, out, octave_sizes(rows, T, f.numel(), levels))
    return out


def octave_grad_input(g, f, T, levels):
    rows = g.shape[0]
    sz = octave_sizes(rows, T, f.numel(), levels)
    gx = poisoned((rows, T), g.dtype)
    work, _ = _octave_buffers(sz, g.dtype)
    call("dc_emu_octave_grad_input", _dtype_code(g, f), g, f, gx, work, sz)
    return gx


def octave_grad_filter(g, x, out, f, levels):
    rows, T = x.shape
    sz = octave_sizes(rows, T, f.numel(), levels)
    gf = poisoned((f.numel(),), g.dtype)
    work, partial = _octave_buffers(sz, g.dtype)
    call("dc_emu_octave_grad_filter", _dtype_code(g, x, out, f), g, x, out, f, gf, work, partial, sz)
    return gf
