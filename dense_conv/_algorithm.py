"""How `algorithm="auto"` picks between the direct and the FFT kernels: a cost model.

Both algorithms are modelled as (work) x (seconds per unit of work) + (output elements) x (seconds
per output element written), with constants measured on the development machine (2-core AVX-512
Xeon, torch 2.14.1, MKL FFT; the rows "ours:direct" and "ours:fft" of bench/bench.py re-measure it):

  direct forward  = C_MAC * MACs inside the causal window (x1.3 when Cr == 1: the row-blocked kernels
                    for one response per plane run slower per MAC than the RB x NX ones)
  direct backward = 2 x the forward MACs (grad_impulse + grad_response)
  fft forward     = C_FFT * B*(Ci*Cr + Ci + Cr) * H*W*log2(H*W) + C_SAMPLE * B
  fft backward    ~ fft forward (Ci*Cr transforms of grad_out, Ci + Cr inverse transforms)
  one-channel problems (Ci == Cr == 1, i.e. every sparse_conv2d after its [B*C, 1, ...] view):
  fft forward     = C_FFT1 * 3B * H*W*log2(H*W) (no per-sample term: it is inside C_FFT1),
  fft backward    = 1.8 x the fft forward (measured 2.6-3.0 x forward for forward+backward)
  both            + C_OUT * output elements (the output is written and its pages touched either way)

Measured crossover (dense, Ci=4, Cr=5, impulse 84x600): the FFT wins from about 15x15 response taps
(~200 taps) upwards; at the user's 37x16 it is about 2x faster forward and 4x forward+backward; at
9x9 and below the direct kernels win.

Sparse (Ci == Cr == 1 per plane; measured side by side in one run at impulse [32, 4, 84, 600],
direct / fft in ms, forward | forward+backward; outputs on huge pages, see csrc/cpu/huge_pages.h):
  5x5    7.4 / 58.8   |  27 / 136      15x15  26.0 / 62.8  |  81 / 181
  37x16 50.1 / 55.6   | 144 / 160      37x32  89.3 / 60.7  | 296 / 167
  64x64  223 / 84.2   | 688 / 241
(at batch 64: 37x16 102 / 127 | 311 / 355, 37x24 144 / 166 | 437 / 434). So the direct kernels win up
to about 600-800 causal taps (37x16 = 592 taps: direct by ~1.1-1.2x) and the FFT from about 900 taps
(37x24 is a tie forward+backward); the model puts the crossover at ~700 taps forward and ~650
forward+backward for an 84x600 impulse, and its direct/fft ratio is within 15% of the measured one at
every size above. The absolute constants were fitted on a loaded host (about 1.5x slower than these
runs); only their ratio decides.

CUDA (`choose_cuda`): NOT calibrated -- the CUDA kernels were written and tested (under the CPU
emulator) on a machine without a GPU, so no CUDA timing exists. The rule is a placeholder from a
back-of-envelope estimate: the direct kernels cost ~Hq*Wq multiply-adds per output element (compute
bound), the FFT path a fixed number of memory passes per output element plus the impulse and response
transforms, i.e. ~(Ci*Cr + Ci + Cr) / (Ci*Cr) transforms per output channel. `auto` takes the FFT when

    Hq * Wq >= CUDA_FFT_MIN_TAPS * (Ci*Cr + Ci + Cr) / (Ci*Cr)      (Hq, Wq: taps that reach the image)

e.g. 186 taps for the user's Ci=4, Cr=5 (the 37x16 response takes the FFT, 9x9 stays direct) and 384
taps for sparse_conv2d (Ci = Cr = 1). Same rule forward and backward. On a CUDA machine,
tools/gpu_check.sh refits CUDA_FFT_MIN_TAPS from measured timings (tools/refit_cuda_auto.py, written to
results/gpu_check.json); replace the placeholder with its value, or with a calibrated model.
"""
import math

import torch

from ._shapes import next_smooth_size

ALGORITHMS = ("auto", "direct", "fft")

# Fitted on one thread: at 2 threads both algorithms run about 2x faster, so the absolute values are ~2x
# high, but their ratio, which alone decides, holds at 2 threads (user's 37x16: fft, 9x9 / 5x5: direct,
# as measured).
C_MAC = 1.7e-11      # s per multiply-add of the direct kernels
C_OUT = 1.75e-9      # s per output element (page faults + stores), both algorithms
C_FFT = 8.0e-11      # s per H*W*log2(H*W) unit of one real 2-D transform
C_SAMPLE = 1.2e-3    # s per sample of fixed FFT overhead (transform calls, copies)
C_FFT1 = 1.8e-10     # one-channel problems: s per H*W*log2(H*W) unit per transform, all overheads included
CUDA_FFT_MIN_TAPS = 128  # uncalibrated: see choose_cuda


def causal_taps(H, Hq):
    """sum over output rows y < H of the taps p <= min(y, Hq-1): min(y, Hq-1) + 1."""
    full = max(0, H - Hq + 1)
    ramp = min(H, Hq - 1)
    return full * Hq + ramp * (ramp + 1) // 2


def costs(B, Ci, Cr, Hi, Wi, Hr, Wr, backward):
    """Modelled seconds (direct, fft) of forward (+ backward when backward=True)."""
    Hq, Wq = min(Hr, Hi), min(Wr, Wi)
    macs = B * Ci * Cr * causal_taps(Hi, Hq) * causal_taps(Wi, Wq)
    out = B * Ci * Cr * Hi * Wi
    direct = C_MAC * macs * (1.3 if Cr == 1 else 1.0)
    H, W = next_smooth_size(Hi + Hq - 1), next_smooth_size(Wi + Wq - 1, even=True)
    unit = H * W * math.log2(max(2, H * W))
    if Ci == 1 and Cr == 1:
        fft = C_FFT1 * 3 * B * unit
        fft_bwd = 1.8
    else:
        fft = C_FFT * B * (Ci * Cr + Ci + Cr) * unit + C_SAMPLE * B
        fft_bwd = 1.0
    if backward:
        direct *= 3
        fft *= 1 + fft_bwd
    return direct + C_OUT * out, fft + C_OUT * out


def choose(B, Ci, Cr, Hi, Wi, Hr, Wr, backward):
    """'direct' or 'fft', whichever the model expects to be faster."""
    if min(B, Ci, Cr, Hi, Wi, Hr, Wr) <= 0:
        return "direct"
    direct, fft = costs(B, Ci, Cr, Hi, Wi, Hr, Wr, backward)
    return "fft" if fft < direct else "direct"


def choose_cuda(B, Ci, Cr, Hi, Wi, Hr, Wr):
    """'direct' or 'fft' for CUDA tensors: the uncalibrated tap-count rule of the module docstring."""
    if min(B, Ci, Cr, Hi, Wi, Hr, Wr) <= 0:
        return "direct"
    taps = min(Hr, Hi) * min(Wr, Wi)
    return "fft" if taps * Ci * Cr >= CUDA_FFT_MIN_TAPS * (Ci * Cr + Ci + Cr) else "direct"


_FFT_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    # float16 / bfloat16 are transformed in float32 (cuFFT's half transforms need power-of-two sizes)
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    # shapes only (fake kernels): accept what either device accepts
    "meta": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


def use_fft(response: torch.Tensor, impulse: torch.Tensor, algorithm: str, sparse: bool) -> bool:
    """Whether a call with `algorithm` ("auto" | "direct" | "fft") runs the FFT kernels."""
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
    if device == "cuda":
        return choose_cuda(B, Ci, Cr, Hi, Wi, Hr, Wr) == "fft"
    backward = torch.is_grad_enabled() and (response.requires_grad or impulse.requires_grad)
    return choose(B, Ci, Cr, Hi, Wi, Hr, Wr, backward) == "fft"
