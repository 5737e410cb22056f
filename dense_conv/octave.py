"""octave_downsample: low-pass FIR and decimation by 2 fused in one pass, for octave-by-octave CQTs.

    y[..., m] = sum_{n=0}^{N-1} filter[n] * x[..., 2m + n - (N-1)/2]      (N odd, zeros outside x)

Only the kept samples are computed. For a symmetric filter (the default half-band design) this
is a zero-phase convolution: output sample m sits exactly on input sample 2m, so octaves never
drift against each other. The output has ceil(T/2) samples. `levels=L` applies the step L times
in one call and returns the L outputs (T/2, T/4, ... samples).

The kernels are C++ (csrc/cpu/octave_downsample_cpu.cpp) and CUDA
(csrc/cuda/octave_downsample_kernels.cuh); `octave_downsample_reference` is the pure-PyTorch
definition used by the tests.
"""
import functools
import math
from typing import List, Optional, Union

import numpy as np
import torch

__all__ = ["octave_downsample", "octave_downsample_reference", "halfband_filter", "halfband_response"]

_lib = torch.ops.dense_conv

# Default design: passband to 0.42 of the input Nyquist (= 0.84 of the output Nyquist), stopband from
# 0.58, 100 dB: 83 taps (43 non-zero), ripple within +-1e-4 dB. A CQT octave whose top bin (with
# its bandwidth) is below 0.84 of Nyquist, e.g. B8 at 22050 Hz (0.727), is passed flat and
# alias-free, and so are most of its kernels' skirts: against the full-rate definition CQT the
# octave method then errs by < 1e-4 of max|C| on noise and clicks (the 47-tap 0.378/88 dB design,
# flat only up to 0.756, gives ~1.3e-4).
DEFAULT_PASSBAND = 0.42
DEFAULT_ATTENUATION_DB = 100.0


@functools.lru_cache(maxsize=32)
def _halfband_taps(passband: float, attenuation_db: float, numtaps: Optional[int]) -> np.ndarray:
    if not 0.0 < passband < 0.5:
        raise ValueError(f"halfband_filter: passband edge must be in (0, 0.5) of the input Nyquist, got {passband}")
    width = (1.0 - 2.0 * passband) * math.pi  # transition width, radians/sample (symmetric about pi/2)
    a = float(attenuation_db)
    if a > 50:
        beta = 0.1102 * (a - 8.7)
    elif a >= 21:
        beta = 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    else:
        beta = 0.0
    if numtaps is None:
        n = int(math.ceil((a - 8.0) / (2.285 * width))) + 1
        # Half-band: taps at even offsets from the centre are zero; take N = 4k+3 so the end taps are not.
        numtaps = n + (3 - n) % 4
    if numtaps % 2 == 0 or numtaps < 3:
        raise ValueError(f"halfband_filter: numtaps must be odd and >= 3, got {numtaps}")
    m = (numtaps - 1) // 2
    k = np.arange(-m, m + 1, dtype=np.float64)
    h = 0.5 * np.sinc(k / 2.0) * np.kaiser(numtaps, beta)
    h[(k != 0) & (k % 2 == 0)] = 0.0  # exact zeros (sinc(k/2) at even k is 0 up to rounding)
    h /= h.sum()  # unit DC gain
    h.setflags(write=False)
    return h


def halfband_filter(passband: float = DEFAULT_PASSBAND, attenuation_db: float = DEFAULT_ATTENUATION_DB,
                    numtaps: Optional[int] = None, dtype=torch.float32, device=None) -> torch.Tensor:
    """Zero-phase odd-length Kaiser half-band low-pass FIR for decimation by 2, unit DC gain.

    passband: edge of the flat band as a fraction of the input Nyquist (the stopband starts at
    1 - passband, where aliasing would fold back onto the passband edge). attenuation_db sets the
    Kaiser beta and, unless numtaps is given, the length (rounded up to 4k+3 taps). The default
    (0.42, 100 dB) has 83 taps, ripple within +-1e-4 dB up to 0.42 and <= -100 dB from 0.58 of
    Nyquist; (0.378, 88 dB) gives 47 taps, +-4.3e-4 dB, -87.6 dB (see `halfband_response`, tested in
    tests/test_octave_downsample.py).
    """
    h = _halfband_taps(float(passband), float(attenuation_db), numtaps)
    return torch.tensor(h, dtype=dtype, device=device)


def halfband_response(h: Union[torch.Tensor, np.ndarray], passband: float = DEFAULT_PASSBAND, n: int = 1 << 16):
    """(max |passband ripple| in dB up to `passband`, max stopband gain in dB from 1 - passband)."""
    h = np.asarray(h.detach().cpu().double() if isinstance(h, torch.Tensor) else h, dtype=np.float64)
    m = (len(h) - 1) // 2
    w = np.linspace(0, np.pi, n)
    k = np.arange(-m, m + 1)
    resp = np.cos(np.outer(w, k)) @ h  # zero-phase: the response is real
    f = w / np.pi
    ripple = np.max(np.abs(20 * np.log10(np.abs(resp[f <= passband]))))
    stop = 20 * np.log10(np.max(np.abs(resp[f >= 1 - passband])))
    return float(ripple), float(stop)


def _check_args(x: torch.Tensor, filter: torch.Tensor, levels: int):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"octave_downsample: x must be a floating-point tensor, got "
                        f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.dim() < 1:
        raise ValueError("octave_downsample: x must have at least 1 dimension [..., T]")
    if filter.dim() != 1 or filter.numel() % 2 == 0:
        raise ValueError(f"octave_downsample: filter must be 1-D with an odd number of taps (zero phase), "
                         f"got shape {tuple(filter.shape)}")
    if levels < 1:
        raise ValueError(f"octave_downsample: levels must be >= 1, got {levels}")


def level_lengths(T: int, levels: int) -> List[int]:
    out, n = [], T
    for _ in range(levels):
        n = (n + 1) // 2
        out.append(n)
    return out


def octave_downsample(x: torch.Tensor, filter: Optional[torch.Tensor] = None, levels: int = 1):
    """Low-pass + decimate by 2 along the last dim, fused. Any leading dims.

    filter: odd-length FIR (default: `halfband_filter()` in x's dtype); it gets a gradient when it
    requires one. levels=1 returns a tensor [..., ceil(T/2)]; levels=L>1 returns a list of L
    tensors, the successive octaves, computed in one call.
    """
    if filter is None:
        filter = halfband_filter(dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
    _check_args(x, filter, levels)
    packed = _lib.octave_downsample(x, filter, levels)
    if levels == 1:
        return packed
    return list(torch.split(packed, level_lengths(x.shape[-1], levels), dim=-1))


def octave_downsample_reference(x: torch.Tensor, filter: torch.Tensor, levels: int = 1):
    """Pure-PyTorch definition (conv1d with stride 2); same semantics and outputs as octave_downsample."""
    _check_args(x, filter, levels)
    lead = x.shape[:-1]
    m = (filter.numel() - 1) // 2
    w = filter.to(x.dtype).view(1, 1, -1)
    cur = x.reshape(-1, 1, x.shape[-1])
    outs = []
    for _ in range(levels):
        cur = torch.nn.functional.conv1d(torch.nn.functional.pad(cur, (m, m)), w, stride=2)
        outs.append(cur.reshape(*lead, cur.shape[-1]))
    return outs[0] if levels == 1 else outs


# ---- fake kernel and autograd for the ops (schemas in csrc/ops.cpp) ----

def _packed_length(T, levels):
    total, n = 0, T
    for _ in range(levels):
        n = (n + 1) // 2
        total = total + n
    return total


@torch.library.register_fake("dense_conv::octave_downsample")
def _fake_forward(x, filter, levels):
    torch._check(filter.dim() == 1, lambda: "octave_downsample: filter must be 1-D")
    torch._check(levels >= 1, lambda: "octave_downsample: levels must be >= 1")
    return x.new_empty((*x.shape[:-1], _packed_length(x.shape[-1], levels)))


@torch.library.register_fake("dense_conv::octave_downsample_grad_input")
def _fake_grad_input(grad, filter, length, levels):
    return grad.new_empty((*grad.shape[:-1], length))


@torch.library.register_fake("dense_conv::octave_downsample_grad_filter")
def _fake_grad_filter(grad, x, out, filter, levels):
    return filter.new_empty(filter.shape)


def _setup_context(ctx, inputs, output):
    x, filter, levels = inputs
    ctx.levels = levels
    ctx.length = x.shape[-1]
    need_filter = ctx.needs_input_grad[1]
    ctx.save_for_backward(filter, x if need_filter else None, output if need_filter and levels > 1 else None)


def _backward(ctx, grad):
    filter, x, out = ctx.saved_tensors
    gx = gf = None
    grad = grad.contiguous()
    if ctx.needs_input_grad[0]:
        gx = _lib.octave_downsample_grad_input(grad, filter, ctx.length, ctx.levels)
    if ctx.needs_input_grad[1]:
        if out is None:
            out = grad.new_empty(0)
        gf = _lib.octave_downsample_grad_filter(grad, x, out, filter, ctx.levels)
    return gx, gf, None


torch.library.register_autograd("dense_conv::octave_downsample", _backward, setup_context=_setup_context)


# Double backward. grad_input is the adjoint of the (x-linear) packed forward F_f:
# <v, grad_input(g, f)> = <F_f(v), g> for every f, so its derivatives are d/dg = F_f(v) and
# d/df = grad_filter(g, v, F_f(v), f). grad_filter's own derivative is not implemented: a clear error
# instead of backpropagating through it as a constant (silently wrong).
def _gi_setup_context(ctx, inputs, output):
    grad, filter, length, levels = inputs
    ctx.levels = levels
    ctx.save_for_backward(grad, filter)


def _gi_backward(ctx, v):
    grad, filter = ctx.saved_tensors
    v = v.contiguous()
    fv = _lib.octave_downsample(v, filter, ctx.levels)
    dg = fv if ctx.needs_input_grad[0] else None
    df = _lib.octave_downsample_grad_filter(grad, v, fv, filter, ctx.levels) if ctx.needs_input_grad[1] else None
    return dg, df, None, None


def _gf_backward(ctx, v):
    raise RuntimeError("octave_downsample: the second derivative through the filter gradient (trainable filter "
                       "with create_graph=True) is not implemented; detach the filter or use "
                       "octave_downsample_reference for double backward")


torch.library.register_autograd("dense_conv::octave_downsample_grad_input", _gi_backward,
                                setup_context=_gi_setup_context)
torch.library.register_autograd("dense_conv::octave_downsample_grad_filter", _gf_backward,
                                setup_context=lambda ctx, inputs, output: None)
