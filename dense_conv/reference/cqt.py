"""Pure-PyTorch CQTs for the tests: the float64 definition, and the octave method with the reference decimator.

`cqt_definition` uses one full-rate kernel per bin (the user's "definition"). For octave i it samples
the top-octave kernel stretched by 2^i at the full rate (for cosine-sum windows such as hann, the
periodic window of n*2^i samples), so the octave method approximates it to the decimator's
ripple/aliasing (~1e-5) instead of differing by the O(1/n) rounding of window lengths.
"""
import math
from typing import Optional

import numpy as np
import torch

from ..audio.cqt import CQT, CQTKernels, check_input, finish, frames, window_samples
from .octave import octave_downsample_reference

__all__ = ["cqt_definition", "cqt_octave_reference"]


def cqt_octave_reference(x: torch.Tensor, sr=22050, hop_length=512, fmin=32.70319566257483, n_bins=288,
                         bins_per_octave=36, filter_scale=1.0, window="hann", scale=True, pad_mode="constant",
                         output="complex", downsample_filter: Optional[torch.Tensor] = None) -> torch.Tensor:
    """dense_conv.CQT with the same arguments, decimating with octave_downsample_reference (no custom op).

    x [T], [B, T] or [B, C, T], float32 or float64 -> [..., n_bins, 1 + T // hop_length] on x's device,
    complex64 / complex128 for output="complex", else real in x's dtype. Raises what dense_conv.CQT
    raises (ValueError for bad arguments, TypeError for a non-floating-point x).
    """
    m = CQT(sr, hop_length, fmin, n_bins, bins_per_octave, filter_scale, window, scale, pad_mode, output,
            downsample_filter=downsample_filter)
    return m.to(x.device).transform(x, octave_downsample_reference)


def cqt_definition(x: torch.Tensor, sr=22050, hop_length=512, fmin=32.70319566257483, n_bins=288,
                   bins_per_octave=36, filter_scale=1.0, window="hann", scale=True, pad_mode="constant",
                   output="complex") -> torch.Tensor:
    """Float64 definition CQT: one full-rate kernel per bin (see the module docstring). Slow.

    Arguments as dense_conv.CQT (any hop_length >= 1). x [T], [B, T] or [B, C, T], floating point, is
    computed in float64 -> [..., n_bins, 1 + T // hop_length] on x's device: complex128 for
    output="complex", float64 for "magnitude" / "power".

    Raises:
        TypeError: x is not a floating-point tensor.
        ValueError: x not [T], [B, T] or [B, C, T]; n_bins or bins_per_octave < 1, fmin <= 0, or the
            top bin's band edge above Nyquist.

    Example:
        C = cqt_definition(torch.randn(22050), n_bins=36, fmin=440.0)  # [36, 44], complex128
    """
    check_input(x, "cqt_definition")
    ker = CQTKernels(sr, fmin, n_bins, bins_per_octave, filter_scale, window, scale, None)
    lead = x.shape[:-1]
    xr = x.reshape(math.prod(lead), x.shape[-1]).to(torch.float64)
    n_frames = 1 + xr.shape[-1] // hop_length
    outs = []
    for i in range(ker.n_octaves):
        first, nb = ker.octave_bins(i)
        s = 2 ** i
        dmin, dmax = s * ker.dmin, s * ker.dmax
        W = np.zeros((nb, 2, dmax - dmin + 1))
        for b in range(nb):
            kk = first + b
            k = ker.n_bins - 1 - i * ker.n_filters - (ker.n_filters - 1 - kk)  # global bin index
            n = int(ker.n[kk]) * s
            w = window_samples(ker.window, n)
            jf = np.arange(n)
            d = -s * int(ker.t0[kk]) - jf
            L = ker.lengths[k]
            v = w / np.sum(np.abs(w)) * np.exp(-2j * np.pi * ker.freqs[k] * d / sr)
            v *= np.sqrt(L) if scale else L
            W[b, 0, d - dmin] = v.real
            W[b, 1, d - dmin] = v.imag
        Wt = torch.tensor(W.reshape(nb * 2, -1), dtype=torch.float64, device=x.device)
        c = frames(xr, Wt, dmin, hop_length, n_frames, pad_mode)
        outs.append(c.view(xr.shape[0], n_frames, nb, 2))
    c = torch.cat(outs[::-1], dim=2)
    c = finish(c.transpose(1, 2), output)
    return c.reshape(*lead, *c.shape[1:])
