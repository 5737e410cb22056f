"""How `algorithm="auto"` picks between the direct and the FFT kernels: a cost model.

Each algorithm's time is modelled as a sum of terms, (count) x (seconds per unit), with counts from the
shapes (`counts`) and one set of constants per (problem, algorithm, pass) (`BUILTIN_CONSTANTS`):

  direct: mac       multiply-adds inside the causal window (B*Ci*Cr convolutions; B*L*Ci for the mix)
  fft:    transform H*W*log2(H*W) units of the real 2-D transforms: B*(Ci*Cr + Ci + Cr) of them
                    (Ci + Cr forward, Ci*Cr inverse); B*(Ci + Cr + L) for the mix (only L inverse)
  both:   out       output elements (written, pages touched)
          sample    samples (per-sample overhead: the NaN/inf scan, transform calls, copies, task set-up)
          call      1 (per-call overhead: allocations, workspaces, thread start)

problems: "dense" (dense_conv2d, Ci*Cr > 1), "single" (Ci == Cr == 1: every sparse_conv2d after its
[B*C, 1, ...] view; its direct kernels block output rows instead of responses, and its FFT does 3
transforms per sample), "mix" (dense_mix_conv2d with L outputs: the per-sample direct path, or the FFT
that mixes per frequency bin). passes: "forward" (no gradient needed) and "training" (forward +
backward, the constants price both together: that is what is measured).

The constants come from `constants()`: those `python -m dense_conv.calibrate` measured and cached for
this machine (CPU model, ISA, torch version, thread count) when present, else `BUILTIN_CONSTANTS`. The
environment variable DENSE_CONV_CALIBRATION=0 forces the built-in constants; set to a JSON file
written by the calibration, it loads that file whatever machine wrote it (for reproducible choices).
A cache file that is corrupt or written for another machine is ignored with a warning. Under
torch.compile the constants are read once, when the call is traced. Known limit: the direct kernels'
cost per MAC grows when fewer responses (Cr, or L for the mix) share each impulse load; one `mac`
constant per problem prices all channel counts alike (calibrated at Cr = 5, L = 8, it under-prices
Cr = 3 or L = 2 by up to 2x).

The built-in constants were measured on the development machine (2-core AVX-512 Xeon, torch 2.14.1,
MKL FFT, fitted on one thread: at 2 threads both algorithms run about 2x faster, their ratio, which
alone decides, holds). There the FFT wins (dense, Ci=4, Cr=5, impulse 84x600) from about 15x15
response taps upwards, about 2x faster forward and 4x forward+backward at the user's 37x16; the
direct kernels win at 9x9 and below. Sparse (side by side at impulse [32, 4, 84, 600], direct / fft in
ms, forward | forward+backward):
  5x5    7.4 / 58.8   |  27 / 136      15x15  26.0 / 62.8  |  81 / 181
  37x16 50.1 / 55.6   | 144 / 160      37x32  89.3 / 60.7  | 296 / 167
  64x64  223 / 84.2   | 688 / 241
so the direct kernels win up to about 600-800 causal taps and the FFT from about 900. Other CPUs
differ (on a 2-core AMD EPYC the user's 37x16 forward runs faster direct): calibrate there.

CUDA (`choose_cuda`): a tap-count rule, checked on one GPU. It came from a back-of-envelope estimate (the
direct kernels cost ~Hq*Wq multiply-adds per output element, the FFT path a fixed number of memory passes per
output element plus the impulse and response transforms, i.e. ~(Ci*Cr + Ci + Cr) / (Ci*Cr) transforms per
output channel): `auto` takes the FFT when

    Hq * Wq >= CUDA_FFT_MIN_TAPS * (Ci*Cr + Ci + Cr) / (Ci*Cr)      (Hq, Wq: taps that reach the image)

with one threshold for a forward alone and one for forward + backward (a gradient will be taken), e.g. for
training 186 taps at the user's Ci=4, Cr=5 (the 37x16 response takes the FFT, 9x9 stays direct) and 384 taps for
sparse_conv2d (Ci = Cr = 1). Fitted on an H200 (2026-12-04, docs/gpu_measured/h200-2026-12-04-b/refit.json:
tools/refit_cuda_auto.py over 42 points, dense and sparse, 3x3 to 64x64 responses at the benchmark's impulse,
21 per direction): training (forward+backward) 128 (every point's faster algorithm), forward 250 (summed relative loss
0.07; with the single threshold 128 it was 0.68: forwards at dense 15x15 and sparse 37x16 ran the FFT where
direct is 9-42% faster). On another GPU, tools/gpu_check.sh refits both (results/gpu_check.json).
"""
import functools
import json
import math
import os
import platform
import re
import warnings
from pathlib import Path
from typing import Optional

import torch

from ._shapes import fft_size

ALGORITHMS = ("auto", "direct", "fft")
PROBLEMS = ("dense", "single", "mix")
PASSES = ("forward", "training")
TERMS = {"direct": ("mac", "out", "sample", "call"), "fft": ("transform", "out", "sample", "call")}
MODELS = tuple(f"{problem}.{algorithm}.{p}" for problem in PROBLEMS for algorithm in TERMS for p in PASSES)

# Fitted on the development Xeon (one thread, see above), without the per-sample / per-call terms of the
# direct kernels. training = forward + backward: the direct backward is 2x the forward MACs (grad_impulse
# + grad_response), the FFT backward about its forward (1.8x for one-channel problems, whose overheads
# are inside `transform`); one-channel direct kernels (output rows blocked) are 1.3x dearer per MAC. The
# mix was not measured there: it borrows the dense constants.
def _direct(mac):
    return {"mac": mac, "out": 1.75e-9, "sample": 0.0, "call": 0.0}


def _fft(transform, sample=0.0):
    return {"transform": transform, "out": 1.75e-9, "sample": sample, "call": 0.0}


_DENSE = {"direct.forward": _direct(1.7e-11), "direct.training": _direct(5.1e-11),
          "fft.forward": _fft(8.0e-11, 1.2e-3), "fft.training": _fft(1.6e-10, 2.4e-3)}
_SINGLE = {"direct.forward": _direct(2.21e-11), "direct.training": _direct(6.63e-11),
           "fft.forward": _fft(1.8e-10), "fft.training": _fft(5.04e-10)}
BUILTIN_CONSTANTS = {f"{problem}.{name}": terms
                     for problem, table in (("dense", _DENSE), ("single", _SINGLE), ("mix", _DENSE))
                     for name, terms in table.items()}
# CUDA's tap-count thresholds (choose_cuda), per direction; refit on an H200: see the module docstring
CUDA_FFT_MIN_TAPS = {"forward": 250, "training": 128}  # keys: PASSES

CALIBRATION_ENV = "DENSE_CONV_CALIBRATION"
CALIBRATION_FORMAT = 1


def causal_taps(H, Hq):
    """sum over output rows y < H of the taps p <= min(y, Hq-1): min(y, Hq-1) + 1."""
    full = max(0, H - Hq + 1)
    ramp = min(H, Hq - 1)
    return full * Hq + ramp * (ramp + 1) // 2


def problem_of(Ci, Cr, L=None):
    """'mix' when L (dense_mix_conv2d's outputs) is given, 'single' when Ci == Cr == 1, else 'dense'."""
    if L is not None:
        return "mix"
    return "single" if Ci == 1 and Cr == 1 else "dense"


def counts(B, Ci, Cr, Hi, Wi, Hr, Wr, L=None):
    """The count of each model term for one call (module docstring); L: dense_mix_conv2d's outputs, else None."""
    H, W = fft_size(Hi, Wi, Hr, Wr)
    unit = H * W * math.log2(max(2, H * W))
    if L is None:
        convolutions, outputs, transforms = Ci * Cr, Ci * Cr, Ci * Cr + Ci + Cr
    else:
        convolutions, outputs, transforms = L * Ci, L, Ci + Cr + L
    taps = causal_taps(Hi, min(Hr, Hi)) * causal_taps(Wi, min(Wr, Wi))
    return {"mac": B * convolutions * taps, "out": B * outputs * Hi * Wi, "transform": B * transforms * unit,
            "sample": B, "call": 1}


def model_name(problem, algorithm, backward):
    return f"{problem}.{algorithm}.{PASSES[bool(backward)]}"


def costs(B, Ci, Cr, Hi, Wi, Hr, Wr, backward, L=None, table=None):
    """Modelled seconds (direct, fft) of forward (+ backward when backward=True), with `table` (default:
    `constants()`)."""
    table = constants() if table is None else table
    n = counts(B, Ci, Cr, Hi, Wi, Hr, Wr, L)
    problem = problem_of(Ci, Cr, L)
    seconds = []
    for algorithm, terms in TERMS.items():
        model = table[model_name(problem, algorithm, backward)]
        seconds.append(sum(model[term] * n[term] for term in terms))
    return tuple(seconds)


def choose(B, Ci, Cr, Hi, Wi, Hr, Wr, backward, L=None):
    """'direct' or 'fft', whichever the model expects to be faster (L: dense_mix_conv2d's outputs)."""
    if min(B, Ci, Cr, Hi, Wi, Hr, Wr, 1 if L is None else L) <= 0:
        return "direct"
    table = constants()
    if torch.compiler.is_compiling():  # sizes may be symbolic: no dict keys of them
        return _cheaper(table, B, Ci, Cr, Hi, Wi, Hr, Wr, backward, L)
    # Remembered per constants table: pricing the two models is most of a small call's Python time (~70 us of
    # ~130 us on a 1x1 problem). The entry holds its table, so the id cannot be reused by another while cached.
    entry = _CHOICES.get(id(table))
    if entry is None or entry[0] is not table:
        entry = _CHOICES[id(table)] = (table, {})
    known = entry[1]
    args = (B, Ci, Cr, Hi, Wi, Hr, Wr, bool(backward), L)
    if args not in known:
        if len(known) >= _MAX_CHOICES:
            known.clear()
        known[args] = _cheaper(table, *args)
    return known[args]


_CHOICES = {}  # id(table) -> (table, {choose's arguments: its answer})
_MAX_CHOICES = 4096


def _cheaper(table, B, Ci, Cr, Hi, Wi, Hr, Wr, backward, L):
    direct, fft = costs(B, Ci, Cr, Hi, Wi, Hr, Wr, backward, L, table)
    return "fft" if fft < direct else "direct"


def choose_cuda(B, Ci, Cr, Hi, Wi, Hr, Wr, backward):
    """'direct' or 'fft' for CUDA tensors: the tap-count rule of the module docstring, with the threshold of a
    forward alone or of forward + backward (`backward`: a gradient will be taken)."""
    if min(B, Ci, Cr, Hi, Wi, Hr, Wr) <= 0:
        return "direct"
    taps = min(Hr, Hi) * min(Wr, Wi)
    threshold = CUDA_FFT_MIN_TAPS[PASSES[bool(backward)]]
    return "fft" if taps * Ci * Cr >= threshold * (Ci * Cr + Ci + Cr) else "direct"


# ---- calibrated constants: the cache of `python -m dense_conv.calibrate` ----

@functools.lru_cache(maxsize=None)
def cpu_model():
    """The CPU's model name (/proc/cpuinfo; platform's answer elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_key():
    """What calibrated constants hold for: CPU model, the ISA torch runs, torch version, thread count."""
    return {"cpu": cpu_model(), "isa": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def cache_path(key):
    """$XDG_CACHE_HOME/dense_conv/<key>.json (XDG_CACHE_HOME defaults to ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = f"{key['cpu']}-{key['isa']}-torch{key['torch']}-{key['threads']}threads"
    return Path(base) / "dense_conv" / (re.sub(r"[^A-Za-z0-9.+-]+", "_", name) + ".json")


def read_calibration(path):
    """(key, constants) of a calibration file; ValueError naming what is wrong when it is not one."""
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"not a calibration file of format {CALIBRATION_FORMAT}")
    key, table = data.get("key"), data.get("constants")
    if not isinstance(key, dict) or not isinstance(table, dict):
        raise ValueError("no 'key' or 'constants' object")
    for model in MODELS:
        terms = TERMS[model.split(".")[1]]
        entry = table.get(model)
        if not isinstance(entry, dict) or set(entry) != set(terms):
            raise ValueError(f"constants[{model!r}] must give exactly {terms}")
        if not all(isinstance(c, (int, float)) and math.isfinite(c) and c >= 0 for c in entry.values()):
            raise ValueError(f"constants[{model!r}] must be finite and >= 0, got {entry}")
    return key, {model: {term: float(c) for term, c in table[model].items()} for model in MODELS}


@torch.compiler.assume_constant_result  # torch.compile reads it once, at trace time, instead of tracing the file read
def constants():
    """The cost model's constants: {model name: {term: seconds per unit}} (see the module docstring)."""
    key = machine_key()
    return _load_constants(os.environ.get(CALIBRATION_ENV, ""), tuple(sorted(key.items())))


@functools.lru_cache(maxsize=None)
def _load_constants(setting, key_items):
    """constants() for one setting of DENSE_CONV_CALIBRATION and one machine key: read once."""
    if setting == "0":
        return BUILTIN_CONSTANTS
    if setting:  # an explicit file: used whatever machine wrote it; an unreadable one is an error
        try:
            return read_calibration(setting)[1]
        except (OSError, ValueError) as e:
            raise ValueError(f"{CALIBRATION_ENV}={setting!r}: cannot use it as a calibration file: {e}") from None
    key = dict(key_items)
    path = cache_path(key)
    if not path.exists():
        return BUILTIN_CONSTANTS
    try:
        file_key, table = read_calibration(path)
    except (OSError, ValueError) as e:
        warnings.warn(f"dense_conv: ignoring the calibration cache {path}: {e}; using the built-in constants")
        return BUILTIN_CONSTANTS
    if file_key != key:
        warnings.warn(f"dense_conv: ignoring the calibration cache {path}: written for {file_key}, this machine is "
                      f"{key}; using the built-in constants")
        return BUILTIN_CONSTANTS
    return table


# ---- the choice for a call ----

_FFT_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    # float16 / bfloat16 are transformed in float32 (cuFFT's half transforms need power-of-two sizes)
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    # shapes only (fake kernels): accept what either device accepts
    "meta": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


def gradient_needed(*inputs):
    """Whether autograd will take a gradient through a call on `inputs` (the `backward` of choose / choose_cuda)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in inputs)


def use_fft(response: torch.Tensor, impulse: torch.Tensor, algorithm: str, sparse: bool,
            mix_weight: Optional[torch.Tensor] = None) -> bool:
    """Whether a call with `algorithm` ("auto" | "direct" | "fft") runs the FFT kernels (mix_weight [L, Ci, Cr]:
    dense_mix_conv2d's weight, priced with the mix model; CPU only)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "direct":
        return False
    device = impulse.device.type
    fft_ok = impulse.dtype in _FFT_DTYPES.get(device, ())
    if algorithm == "fft":
        if not fft_ok:
            raise NotImplementedError("algorithm='fft' runs on CPU with float32/float64 tensors and on CUDA with "
                                      "float16/bfloat16/float32/float64 tensors (got "
                                      f"{impulse.device.type}, {impulse.dtype}); use 'direct' or 'auto'")
        return True
    if not fft_ok or response.dim() != 4 or impulse.dim() != 4:
        return False
    B, Ci, Hi, Wi = impulse.shape
    Cr, Hr, Wr = response.shape[1:]
    if sparse:
        B, Ci, Cr = B * Ci, 1, 1
    inputs = (response, impulse) if mix_weight is None else (response, impulse, mix_weight)
    backward = gradient_needed(*inputs)
    if device == "cuda":
        return choose_cuda(B, Ci, Cr, Hi, Wi, Hr, Wr, backward) == "fft"
    if mix_weight is None:
        return choose(B, Ci, Cr, Hi, Wi, Hr, Wr, backward) == "fft"
    return choose(B, Ci, Cr, Hi, Wi, Hr, Wr, backward, mix_weight.shape[0]) == "fft"


# ---- FFT spectra kept for the backward ----
# A CPU FFT forward that will be differentiated can keep every sample's impulse and response spectra,
# B (Ci + Cr) complex planes of the transform size, held by autograd until the backward, which then skips
# 9 of its 38 transforms per sample at the user's shape (dense_conv2d_fft_keep_spectra /
# dense_conv2d_fft_backward_spectra; dense_mix_conv2d's pair likewise, 9 of 26). Budget: the spectra are
# kept while they take at most SPECTRA_BUDGET_ENV (default DEFAULT_SPECTRA_BUDGET of the device type) times the
# output's bytes: the training step already holds the output and a grad_out of that size, so the extra memory
# stays a bounded fraction of what the step holds anyway, whatever the shape (the spectra are 0.69x the output
# at the user's shape, 1.7x for the fused mix at L = 8, 3x for sparse_conv2d's one-channel problems, which thus
# never keep them at the default). 0 turns keeping off.
# Measured (2-core AMD EPYC shared with other jobs, load 1-5, float32, impulse [64, 4, 84, 600], response
# [64, 5, 37, 16], algorithm="fft", forward+backward; 9 alternating rounds in two runs, one subprocess per
# variant and round, fastest of 3 steps each, process CPU time):
#   dense_conv2d, 1 thread:  kept 0.316-0.335 s, recomputed 0.321-0.409 s
#                 2 threads: kept 0.384-0.432 s, recomputed 0.423-0.475 s
#                 peak RSS:  1449-1478 MiB against 1291-1315 MiB (+158 MiB: the spectra are 169 MiB)
#   dense_mix_conv2d, L = 8 (4 rounds; budget forced to keep): 1 thread kept 0.327-0.374 s, recomputed
#                 0.314-0.363 s; 2 threads 0.424-0.459 s against 0.436-0.483 s; +160 MiB peak RSS. No
#                 clear gain there then. After its bin loops were register-tiled (2026-12-04; 2 threads, wall
#                 time, median of 9 alternating steps, 3 runs each): kept 206-217 ms, recomputed 239-269 ms:
#                 the transforms it skips are now the larger share. Its spectra are 1.7x its output (4 + 5
#                 planes against 8), hence the CPU's default budget of 2.
# CUDA (dense_conv2d_fft_keep_spectra and the mix pair have CUDA kernels too, csrc/cuda/fft_*_cuda.cu): the same
# rule, counted in the spectra's own dtype (complex64 for float16 / bfloat16 inputs, which transform in float32:
# at the user's shape their spectra are 1.38x a float16 output, not kept by default). GPU memory is the scarcer
# resource there (a 12 GiB RTX 4070 SUPER holds the whole training step), so its default stays conservative (1):
# kept spectra never outweigh the output the step already holds, and the CUDA forward's own chunked
# intermediates (at most max(the output, 256 MiB): csrc/cuda/fft_cuda_common.h) come on top only transiently.
# What keeping saves on a GPU is counted, not measured (the H200 runs did not time it apart): the backward's 2-D
# transforms of the impulse and response, the same 9 of 38 (9 of 26) planes as on the CPU.
SPECTRA_BUDGET_ENV = "DENSE_CONV_FFT_SPECTRA_BUDGET"
DEFAULT_SPECTRA_BUDGET = {"cpu": 2.0, "cuda": 1.0}


def spectra_budget(device_type: str = "cpu") -> float:
    """The spectra budget, a multiple of the output's bytes (SPECTRA_BUDGET_ENV, else DEFAULT_SPECTRA_BUDGET for
    the device type)."""
    setting = os.environ.get(SPECTRA_BUDGET_ENV, "")
    if not setting:
        return DEFAULT_SPECTRA_BUDGET[device_type]
    try:
        budget = float(setting)
    except ValueError:
        budget = -1.0
    if not budget >= 0.0:
        raise ValueError(f"{SPECTRA_BUDGET_ENV} must be a number >= 0 (a multiple of the output's size), "
                         f"got {setting!r}")
    return budget


def keep_fft_spectra(response: torch.Tensor, impulse: torch.Tensor, mix_weight: Optional[torch.Tensor] = None) -> bool:
    """Whether an FFT forward (dense_conv2d; dense_mix_conv2d with mix_weight [L, Ci, Cr]) keeps its spectra for
    the backward: on the CPU or CUDA, when a gradient will be needed and they fit the budget (see above)."""
    inputs = (response, impulse) if mix_weight is None else (response, impulse, mix_weight)
    if impulse.device.type not in ("cpu", "cuda") or not (torch.is_grad_enabled()
                                                          and any(t.requires_grad for t in inputs)):
        return False
    B, Ci, Hi, Wi = impulse.shape
    Cr, Hr, Wr = response.shape[1:]
    out_channels = Ci * Cr if mix_weight is None else mix_weight.shape[0]
    return spectra_fit_budget(B, Ci, Cr, Hi, Wi, Hr, Wr, out_channels, impulse.element_size(),
                              impulse.dtype == torch.float64, impulse.device.type)


def spectra_fit_budget(B, Ci, Cr, Hi, Wi, Hr, Wr, out_channels, itemsize, double, device_type):
    """keep_fft_spectra's budget rule on sizes (also tools/gpu_model.py's): the B (Ci + Cr) spectra against the
    output's B out_channels Hi x Wi values of `itemsize` bytes."""
    H, W = fft_size(Hi, Wi, Hr, Wr)
    complex_bytes = 16 if double else 8  # _fake.spectra_dtype
    spectra_bytes = B * (Ci + Cr) * H * (W // 2 + 1) * complex_bytes
    output_bytes = B * out_channels * Hi * Wi * itemsize
    return spectra_bytes <= spectra_budget(device_type) * output_bytes
