"""Inverse constant-Q transform following librosa.icqt (librosa >= 0.10), octave by octave on the CQT's kernels.

librosa.icqt resynthesises each octave at the rate the forward CQT analysed it (sr / 2^level), then
resamples it to sr and sums. Per octave it takes the one-sided FFTs of the octave's filters (n_fft = the
next power of 2 of the octave's longest filter), weights each bin by 1 / (L_k(octave rate) * energy of
its FFT filter) (and by sqrt(L_k) when scale=True, undoing the forward scaling), and runs an istft with a
rectangular window: the overlap-add divided by the number of n_fft-long frames covering each sample.

In the time domain that is the adjoint of the forward octave's kernels with a weight per bin: with
K_k[d] the weight of x_level[t * hop_level + d] in C[k, t] (CQTKernels.kernel_matrix: librosa's filter
at that rate, its scaling included) and L_k librosa's filter length at that rate,

    y_level[t * hop_level + d] += 2 Re(C[k, t] conj(K_k[d])) * n_fft / (L_k * sum_d |K_k[d]|^2 * count),

count = n_fft / hop_level (1 where frames do not overlap) except near the ends. That is what this module
computes: one real matmul and an overlap-add per octave. The octaves are brought to sr by the adjoint
of the forward CQT's decimation (octave_downsample's input gradient: zero stuffing and the same
half-band filter, level by level), times 2 per level; one call of that op interpolates every level.

Differences from librosa.icqt: the basis is not sparsified (librosa's sparsity=0); the resampler is the
half-band interpolator, not res_type; bins are grouped into octaves from the top, as the forward CQT
groups them (librosa.icqt groups from the bottom, so with n_bins not a multiple of bins_per_octave a few
of its bins are resynthesised at another rate than they were analysed); where n_fft is not a multiple of
hop_level librosa's frame count alternates between two integers (a ripple of up to 1/count); here the
interior uses n_fft / hop_level, and only the edge frames the count of librosa's.
"""
import functools
import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from .. import _extension
from .cqt import CQT, _check_dtype, _hashable

__all__ = ["icqt", "ICQT"]


def _overlap_add(frames: torch.Tensor, hop: int, dmin: int, n_out: int) -> torch.Tensor:
    """frames [R, F, W] -> y [R, n_out], y[t * hop + dmin + j] += frames[:, t, j] (what falls outside is dropped).

    Frame t's block b (its samples b * hop ... b * hop + hop - 1) lands in output block m = t + b. With the
    frames zero-padded to B = ceil(W / hop) blocks, and by B - 1 zero frames at either end, output block m
    sums padded frame m + c, block B - 1 - c, for c = 0 .. B - 1: in the flat padded array that block starts
    at ((m + c) * B + B - 1 - c) * hop = (m * B + c * (B - 1) + B - 1) * hop, a strided view summed over c
    (one op, ~10x faster than torch's fold here; the view never reads one element twice). The padded array is
    one zero fill and one copy (two launches on a GPU, not the four of two pads)."""
    R, F, W = frames.shape
    B = -(-W // hop)
    M = F + B - 1
    flat = frames.new_zeros(R, (F + 2 * (B - 1)) * B * hop)
    flat.narrow(1, (B - 1) * B * hop, F * B * hop).view(R, F, B * hop).narrow(2, 0, W).copy_(frames)
    view = flat.as_strided((R, M, B, hop), (flat.stride(0), B * hop, (B - 1) * hop, 1), (B - 1) * hop)
    buf = view.sum(dim=2).reshape(R, M * hop)  # buffer sample b is output sample b + dmin
    if dmin > 0 or n_out - dmin > buf.shape[1]:
        buf = torch.nn.functional.pad(buf, (max(0, dmin), max(0, n_out - dmin - buf.shape[1])))
    start = max(0, -dmin)
    return buf[:, start:start + n_out]


def _edge_scales(n_out: int, n_fft: int, hop: int, n_frames: int):
    """librosa's istft normalisation near the ends, relative to the interior's, as [(start, stop, scale
    [stop - start] float64 numpy)]: y[:, n] is to be multiplied by floor(n_fft / hop) / count(n) where that is
    > 1, count(n) = the number of frames t in [0, n_frames) with t * hop - n_fft / 2 <= n < t * hop + n_fft / 2.
    Any n_fft consecutive samples hold at least floor(n_fft / hop) frame centres, so only the n_fft / 2 samples
    at either end can change. Host arithmetic: ICQT caches the result per frame count and device."""
    half = n_fft // 2
    ends = [(0, n_out)] if n_out <= 2 * half else [(0, half), (n_out - half, n_out)]
    scales = []
    for start, stop in ends:
        n = np.arange(start, stop)
        last = np.minimum((n + half) // hop, n_frames - 1)
        first = np.maximum(-((half - 1 - n) // hop), 0)
        count = np.maximum(last - first + 1, 1)
        scales.append((start, stop, np.maximum((n_fft // hop) / count, 1.0)))
    return scales


class ICQT(nn.Module):
    """Inverse CQT (librosa.icqt semantics) with its kernels precomputed: C [..., n_bins, F] -> y [..., T].

    Built on the forward CQT's octave layout (a `dense_conv.CQT` with the same parameters): octave i is
    resynthesised at the rate where the CQT analysed it, with the adjoint of its kernels weighted per
    bin as librosa.icqt weights them, and brought to sr by half-band interpolation (the adjoint of
    octave_downsample, times 2, with the CQT's decimation filter). See the module docstring for the
    algorithm and the differences from librosa.icqt (no sparsity, no res_type).

    Args:
        sr, hop_length, fmin, n_bins, bins_per_octave, filter_scale, window, scale, tuning, norm: those of
            the CQT that made C (librosa.icqt's defaults; fmin=None: C1, 32.70 Hz; n_bins: librosa.cqt's 84).
        dtype: (keyword) None (the precision of C: float32 for complex64, float64 for complex128) or the
            output's float32 / float64 (torch or numpy; complex64 / complex128 name the same precision).

    Forward: C [n_bins, F], [B, n_bins, F] or [B, Ch, n_bins, F], complex64 or complex128, F >= 1, on any
    device -> y [..., hop_length * (F - 1)] real (float32 / float64), or [..., length] when length is
    given (then C is first cut to the frames that reach the first length samples, as librosa does).
    Differentiable in C.

    Raises:
        TypeError: (construction) a parameter of the wrong type, named; (forward) C is not a complex tensor,
            length not an int.
        ValueError: (construction) n_bins, bins_per_octave or hop_length < 1, sr, fmin or filter_scale
            <= 0, a bad norm or window, the top bin's band edge above Nyquist; (forward) C not
            [..., n_bins, F] with 2 to 4 dims, this module's n_bins and F >= 1, or length < 1.
        ImportError: (forward) the compiled extension is missing and the CQT decimates (hop_length even).

    Example:
        C = dense_conv.CQT(n_bins=84, bins_per_octave=12)(torch.randn(22050))   # [84, 44] complex64
        y = dense_conv.ICQT()(C, length=22050)                                  # [22050] float32
    """

    def __init__(self, sr: float = 22050, hop_length: int = 512, fmin: Optional[float] = None, n_bins: int = 84,
                 bins_per_octave: int = 12, filter_scale: float = 1.0, window="hann", scale: bool = True, *,
                 tuning: float = 0.0, norm: Optional[float] = 1, dtype=None):
        super().__init__()
        try:
            self.out_dtype = _check_dtype(dtype)
            forward = CQT(sr, hop_length, fmin, n_bins, bins_per_octave, filter_scale,
                          window, scale, tuning=tuning, norm=norm)
        except (TypeError, ValueError) as e:
            raise type(e)("ICQT: " + str(e).removeprefix("CQT: ")) from None
        ker = forward.ker
        self.sr, self.hop_length, self.n_bins, self.bins_per_octave = ker.sr, int(hop_length), ker.n_bins, ker.bpo
        self.max_length = float(np.max(ker.lengths))
        # per octave: (first bin, last bin + 1, level, dmin, librosa's n_fft); synthesis weights [2 * nb, W]
        self.octaves = []
        for i in range(ker.n_octaves):
            bins = ker.octave_bin_indices(i)
            level = ker.levels[i]
            K, dmin = ker.kernel_matrix(i, level)
            L = ker.lengths[bins] / 2 ** level  # librosa's filter lengths at the octave's rate
            n_fft = 2 ** int(math.ceil(math.log2(L.max())))
            # librosa's weight per bin, its istft's interior normalisation (n_fft / frame count: hop, or n_fft
            # where frames do not overlap) and the gain 2^level of the interpolation up to sr
            mu = 2.0 / (L * np.sum(np.abs(K) ** 2, axis=1)) * min(n_fft, hop_length >> level) * 2 ** level
            # rows interleaved (re, im) per bin, as view_as_real lays out C's bins (no per-octave copy of C)
            S = np.stack([K.real * mu[:, None], K.imag * mu[:, None]], axis=1).reshape(2 * len(bins), -1)
            self.register_buffer(f"synthesis_{i}", torch.tensor(S, dtype=torch.float64), persistent=False)
            self.octaves.append((int(bins[0]), int(bins[-1]) + 1, level, dmin, n_fft))
        self.n_decimations = ker.n_decimations
        self.register_buffer("upsample_filter", forward.downsample_filter.double(), persistent=False)
        self._converted = {}  # (device, dtype) -> the buffers converted (see _operands)
        self._edges = {}  # (device, dtype, F) -> every octave's edge scales (see _edge_scales)

    def _apply(self, fn, *args, **kwargs):
        # .to() / .cuda() / .double() replace the buffers: drop what was converted from the old ones
        self._converted, self._edges = {}, {}
        return super()._apply(fn, *args, **kwargs)

    def _operands(self, device, real, F):
        """The synthesis matrices and the interpolation filter on `device` in `real`, and every octave's edge
        scales for F frames, converted once and kept: a call on another device or dtype than the buffers' (the
        `icqt` function's cached module lives on the CPU) then copies no constants (no host-to-device copy, no
        conversion, ~16 small launches fewer per octave than computing the scales on the device)."""
        key = (device, real)
        if key not in self._converted:
            self._converted[key] = ([getattr(self, f"synthesis_{i}").to(device=device, dtype=real)
                                     for i in range(len(self.octaves))],
                                    self.upsample_filter.to(device=device, dtype=real))
        if (device, real, F) not in self._edges:
            if len(self._edges) >= 8:  # a few lengths at a time, not one entry per length ever seen
                self._edges.pop(next(iter(self._edges)))
            T = self.hop_length * (F - 1)
            self._edges[(device, real, F)] = [
                [(start, stop, torch.as_tensor(scale, dtype=real).to(device))
                 for start, stop, scale in _edge_scales(T >> level, n_fft, self.hop_length >> level, F)]
                for _, _, level, _, n_fft in self.octaves]
        return self._converted[key] + (self._edges[(device, real, F)],)

    def extra_repr(self):
        """The text inside ICQT(...) when the module is printed: sr, hop_length, n_bins, bins_per_octave."""
        return f"sr={self.sr:g}, hop_length={self.hop_length}, n_bins={self.n_bins}, " \
               f"bins_per_octave={self.bins_per_octave}"

    def forward(self, C: torch.Tensor, length: Optional[int] = None) -> torch.Tensor:
        """C [..., n_bins, F] complex64/complex128 -> y [..., hop_length * (F - 1)] (or [..., length]), real.

        length: None or an int >= 1: the output is cut or zero-padded to it (librosa's `length`).
        """
        _check_spectrum(C, "ICQT")
        if C.shape[-2] != self.n_bins:
            raise ValueError(f"ICQT: C has {C.shape[-2]} bins (dim -2 of shape {tuple(C.shape)}); this ICQT was "
                             f"built for n_bins={self.n_bins}")
        if length is not None:
            length = _check_length(length)
            # librosa: only the frames that reach the first `length` samples
            C = C[..., :int(math.ceil((length + self.max_length) / self.hop_length))]
        real = self.out_dtype or (torch.float64 if C.dtype == torch.complex128 else torch.float32)
        C = C.to({torch.float32: torch.complex64, torch.float64: torch.complex128}[real])
        lead, (n_bins, F) = C.shape[:-2], C.shape[-2:]
        # [R, F, n_bins, 2]: one copy; octave i's bins are then a [R, F, 2 * nb] view matching its interleaved
        # synthesis rows (Re(c conj(k)) = c_r k_r + c_i k_i)
        Cf = torch.view_as_real(C.reshape(math.prod(lead), n_bins, F)).transpose(1, 2).contiguous()
        R = Cf.shape[0]
        synthesis, filt, edges = self._operands(C.device, real, F)
        T = self.hop_length * (F - 1)
        by_level = [None] * (self.n_decimations + 1)  # [R, T / 2^level], scaled by 2^level; every level has octaves
        for (lo, hi, level, dmin, n_fft), S, octave_edges in zip(self.octaves, synthesis, edges):
            c = Cf[:, :, lo:hi].reshape(R, F, 2 * (hi - lo))
            y = _overlap_add(c @ S, self.hop_length >> level, dmin, T >> level)
            for start, stop, scale in octave_edges:
                y[:, start:stop].mul_(scale)
            by_level[level] = y if by_level[level] is None else by_level[level] + y
        y = by_level[0]
        if self.n_decimations > 0:
            # sum_l 2^l A_1^T ... A_l^T y_l (A: octave_downsample) in one call: the adjoint of the packed
            # multi-level decimation, i.e. each level zero-stuffed and low-passed up to sr (gains in S)
            packed = torch.cat(by_level[1:], dim=-1)
            y = y + _extension.ops().octave_downsample_grad_input(packed, filt, T, self.n_decimations)
        if length is not None:
            y = y[:, :length] if y.shape[-1] >= length else torch.nn.functional.pad(y, (0, length - y.shape[-1]))
        return y.reshape(*lead, y.shape[-1])


def _check_length(length) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"ICQT: length must be None or an int >= 1, got {length!r} ({type(length).__name__})")
    if length < 1:
        raise ValueError(f"ICQT: length must be None or an int >= 1, got {length}")
    return int(length)


def _check_spectrum(C, name):
    if not isinstance(C, torch.Tensor):
        raise TypeError(f"{name}: C must be a torch.Tensor, got {type(C).__name__}")
    if C.dtype not in (torch.complex64, torch.complex128):
        raise TypeError(f"{name}: C must be a complex64 or complex128 tensor (a CQT with output='complex'), "
                        f"got {C.dtype}")
    if C.dim() not in (2, 3, 4):
        raise ValueError(f"{name}: C must be [n_bins, F], [B, n_bins, F] or [B, C, n_bins, F], got shape "
                         f"{tuple(C.shape)}")
    if C.shape[-1] < 1 or C.shape[-2] < 1:
        raise ValueError(f"{name}: C needs at least one bin and one frame, got shape {tuple(C.shape)}")


@functools.lru_cache(maxsize=16, typed=True)  # typed: scale=1 must not find scale=True's module
def _cached_icqt(sr, hop_length, fmin, n_bins, bins_per_octave, filter_scale, window, scale, tuning, norm, dtype):
    return ICQT(sr, hop_length, fmin, n_bins, bins_per_octave, filter_scale, window, scale, tuning=tuning,
                norm=norm, dtype=dtype)


def icqt(C: torch.Tensor, *, sr: float = 22050, hop_length: int = 512, fmin: Optional[float] = None,
         bins_per_octave: int = 12, tuning: float = 0.0, filter_scale: float = 1, norm: Optional[float] = 1,
         window="hann", scale: bool = True, length: Optional[int] = None, dtype=None) -> torch.Tensor:
    """Inverse constant-Q transform with librosa.icqt's arguments: C [..., n_bins, F] complex -> y [..., T] real.

    The functional form of `ICQT` (whose kernels it caches per parameter set, so repeated calls skip their
    construction). librosa's `sparsity` and `res_type` are not supported: the basis is dense (librosa's
    sparsity=0) and the octaves are interpolated with the CQT's half-band filter.

    Args:
        C: [n_bins, F], [B, n_bins, F] or [B, Ch, n_bins, F], complex64 or complex128, F >= 1 (the output
            of `dense_conv.CQT(output="complex")` or librosa.cqt); any device; differentiable.
        sr, hop_length, fmin, bins_per_octave, tuning, filter_scale, norm, window, scale: those of the CQT
            (librosa's defaults; fmin=None: C1, 32.70 Hz); n_bins is C's dim -2.
        length: None (T = hop_length * (F - 1)) or an int >= 1: y is cut or zero-padded to length samples.
        dtype: None (float32 for complex64 C, float64 for complex128) or float32 / float64 (torch or numpy).

    Returns:
        y [..., T], float32 or float64, on C's device.

    Raises:
        TypeError: C not a complex tensor, a parameter of the wrong type (named).
        ValueError: C not 2-4-dimensional or empty, a bad parameter (named, as CQT's checks), length < 1.
        ImportError: the compiled extension is missing and the CQT decimates (hop_length even).

    Example:
        x = torch.randn(22050)
        C = dense_conv.CQT(n_bins=84, bins_per_octave=12)(x)          # [84, 44] complex64
        y = dense_conv.icqt(C, bins_per_octave=12, length=x.shape[-1])  # [22050] float32
    """
    _check_spectrum(C, "icqt")
    args = (sr, hop_length, fmin, C.shape[-2], bins_per_octave, filter_scale, _hashable(window), scale, tuning,
            norm, dtype)
    try:
        hash(args)
    except TypeError:  # not cacheable: ICQT names the bad parameter
        return ICQT(*args[:8], tuning=tuning, norm=norm, dtype=dtype)(C, length)
    return _cached_icqt(*args)(C, length)
