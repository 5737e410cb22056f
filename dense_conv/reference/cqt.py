"""Pure-PyTorch CQTs for the tests: the float64 definition, and the octave method with the reference decimator.

`cqt_definition` uses one full-rate kernel per bin (the user's "definition"): the kernels the octave
method uses, applied to the full-rate signal. Octave i, which the octave method computes at rate
sr/2^level(i) (CQTKernels.levels), is sampled at the full rate with its window stretched by 2^level(i)
(for cosine-sum windows such as hann, the periodic window of n*2^level(i) samples), so the octave method
approximates it to the decimator's ripple/aliasing (~1e-5) instead of differing by the O(1/n) rounding
of window lengths. With exact_lengths=True every kernel is its continuous window of exactly L_k samples,
sampled at the full rate: the CQT with exact per-bin lengths.
"""
import math
from typing import Optional

import torch

from ..audio.cqt import CQT, CQTKernels, _real_rows, check_input, finish, frames
from .octave import octave_downsample_reference

__all__ = ["cqt_definition", "cqt_octave_reference"]


def cqt_octave_reference(x: torch.Tensor, sr=22050, hop_length=512, fmin=32.70319566257483, n_bins=288,
                         bins_per_octave=36, filter_scale=1.0, window="hann", scale=True, pad_mode="constant",
                         output="complex", downsample_filter: Optional[torch.Tensor] = None, *, tuning=0.0,
                         norm=1, gamma=0.0, exact_lengths=False) -> torch.Tensor:
    """dense_conv.CQT with the same arguments, decimating with octave_downsample_reference (no custom op).

    x [T], [B, T] or [B, C, T], float32 or float64 -> [..., n_bins, 1 + T // hop_length] on x's device,
    complex64 / complex128 for output="complex", else real in x's dtype. Raises what dense_conv.CQT
    raises (ValueError / TypeError for bad arguments, TypeError for a non-floating-point x).
    """
    m = CQT(sr, hop_length, fmin, n_bins, bins_per_octave, filter_scale, window, scale, pad_mode, output,
            downsample_filter=downsample_filter, tuning=tuning, norm=norm, gamma=gamma, exact_lengths=exact_lengths)
    return m.to(x.device).transform(x, octave_downsample_reference)


def cqt_definition(x: torch.Tensor, sr=22050, hop_length=512, fmin=32.70319566257483, n_bins=288,
                   bins_per_octave=36, filter_scale=1.0, window="hann", scale=True, pad_mode="constant",
                   output="complex", *, tuning=0.0, norm=1, gamma=0.0, exact_lengths=False) -> torch.Tensor:
    """Float64 definition CQT: one full-rate kernel per bin (see the module docstring). Slow.

    Arguments as dense_conv.CQT (any hop_length >= 1; it chooses the rate each octave's kernels are
    discretised at, as in the octave method); gamma (default 0.0: the CQT; None: the ERB-based VQT) as
    dense_conv.VQT. exact_lengths=True: every bin's kernel is its continuous window, exactly L_k samples long,
    sampled at the full rate (see CQTKernels), independently of any octave's rate but for the norm's length.
    pad_mode "constant" (zeros) or "reflect" (of the full-rate signal). x [T], [B, T] or [B, C, T], floating
    point, is computed in float64 -> [..., n_bins, 1 + T // hop_length] on x's device: complex128 for
    output="complex", float64 for "magnitude" / "power".

    Raises:
        TypeError: x is not a floating-point tensor; a parameter of the wrong type (as CQTKernels).
        ValueError: x not [T], [B, T] or [B, C, T], or empty with pad_mode="reflect"; a bad pad_mode; bad
            parameters as CQTKernels (n_bins < 1, fmin <= 0, the top bin's band edge above Nyquist, ...).

    Example:
        C = cqt_definition(torch.randn(22050), n_bins=36, fmin=440.0)  # [36, 44], complex128
        V = cqt_definition(torch.randn(22050), n_bins=36, fmin=440.0, gamma=None)  # the VQT, [36, 44]
    """
    check_input(x, "cqt_definition")
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"cqt_definition: pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    if pad_mode == "reflect" and x.shape[-1] == 0:
        raise ValueError("cqt_definition: pad_mode='reflect' needs at least one sample")
    ker = CQTKernels(sr, fmin, n_bins, bins_per_octave, filter_scale, window, scale, hop_length, tuning, norm,
                     gamma, exact_lengths)
    lead = x.shape[:-1]
    xr = x.reshape(math.prod(lead), x.shape[-1]).to(torch.float64)
    n_frames = 1 + xr.shape[-1] // hop_length
    outs = []
    for i in range(ker.n_octaves):
        K, dmin = ker.kernel_matrix(i, 0)
        nb = K.shape[0]
        W = _real_rows(K, torch.float64).reshape(nb * 2, -1).to(x.device)
        c = frames(xr, W, dmin, hop_length, n_frames, pad_mode)
        outs.append(c.view(xr.shape[0], n_frames, nb, 2))
    c = torch.cat(outs[::-1], dim=2)
    c = finish(c.transpose(1, 2), output)
    return c.reshape(*lead, *c.shape[1:])
