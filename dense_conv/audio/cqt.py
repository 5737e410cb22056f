"""Constant-Q transform computed octave by octave, trainable, following librosa >= 0.10 (`librosa.cqt`).

Conventions (librosa's): f_k = fmin * 2^(k/B); alpha = (r^2-1)/(r^2+1), r = 2^(1/B); Q = filter_scale/alpha;
L_k = Q*sr/f_k; kernel k = window of n_k = floor(L_k/2) - floor(-L_k/2) samples (periodic, scipy's
get_window) times exp(2 pi i f_k t / sr), t = floor(-L_k/2) ... , L1-normalised; frames centred on
t*hop, 1 + T // hop of them; C[k, t] = L_k * sum_d x[t*hop + d] * conj-free kernel(-d), divided by
sqrt(L_k) when scale=True (a unit cosine at f_k reads 0.5*sqrt(L_k)); zero padding ('constant').

The octave method (the user's "iterative" CQT, and librosa's): the top octave of kernels is applied
at the full rate; the signal is low-passed and decimated by 2 (`octave_downsample`, a zero-phase
half-band FIR) and the *same* kernels give the next octave down, and so on. At octave i (0 = top)
the kernel of bin k is the top-octave kernel at rate sr/2^i, i.e. the same continuous window and
exponential stretched by 2^i.

References (dense_conv.reference): `cqt_definition`, the float64 definition CQT with one full-rate
kernel per bin, and `cqt_octave_reference`, this module's octave loop with the pure-PyTorch decimator.
"""
import functools
import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..functional import octave_downsample
from .octave import DEFAULT_ATTENUATION_DB, DEFAULT_PASSBAND, halfband_filter

__all__ = ["CQT", "cqt_frequencies", "CQTKernels", "note_names"]

_OUTPUTS = ("complex", "magnitude", "power")


def cqt_frequencies(n_bins: int, fmin: float, bins_per_octave: int = 12) -> np.ndarray:
    """Centre frequencies of the CQT bins in Hz: f_k = fmin * 2^(k / bins_per_octave), k = 0 .. n_bins-1.

    Returns a float64 numpy array [n_bins], ascending (librosa.cqt_frequencies' values). No checks.

    Example:
        cqt_frequencies(3, 440.0)  # [440.0, 466.16..., 493.88...]
    """
    return fmin * 2.0 ** (np.arange(n_bins, dtype=np.float64) / bins_per_octave)


def note_names(freqs) -> list:
    """Note names (C1, C#1, ...) of the nearest equal-tempered notes (A4 = 440 Hz).

    freqs: frequencies in Hz, > 0, any array-like of shape [n] (read as float64); returns a list of n
    strings. A frequency <= 0 raises ValueError (its logarithm).

    Example:
        note_names([261.63, 440.0])  # ['C4', 'A4']
    """
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    out = []
    for f in np.asarray(freqs, dtype=np.float64):
        midi = int(round(69 + 12 * math.log2(f / 440.0)))
        out.append(f"{names[midi % 12]}{midi // 12 - 1}")
    return out


@functools.lru_cache(maxsize=16)
def window_samples(window, n: int) -> np.ndarray:
    import scipy.signal
    return np.asarray(scipy.signal.get_window(window, n, fftbins=True), dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _window_bandwidth(window) -> float:
    # librosa.filters.window_bandwidth: equivalent noise bandwidth in bins, from a 1000-point window
    w = window_samples(window, 1000)
    return float(1000 * np.sum(w ** 2) / np.sum(np.abs(w)) ** 2)


def _hashable(window):
    return tuple(window) if isinstance(window, list) else window


class CQTKernels:
    """Top-octave kernel set and layout of a CQT (float64 numpy, computed once); used by CQT.

    Arguments as CQT's (sr, fmin, n_bins, bins_per_octave, filter_scale, window, scale, hop_length;
    hop_length=None skips its check).

    Attributes:
        kernels: complex128 [n_filters, width], kernels[k', d - dmin] is the weight of x[t*hop + d];
            L1-normalised and multiplied by sqrt(L) (scale=True) or L (scale=False).
        freqs, lengths: float64 [n_bins], every bin's centre frequency (Hz) and filter length L_k.
        n_filters: min(bins_per_octave, n_bins), the kernels of one octave; n_octaves: ceil(n_bins / bpo).
        t0, n: int64 [n_filters], each top-octave kernel's time origin and window length.
        dmin, dmax, width: the offsets d the kernels cover (width = dmax - dmin + 1).
        alpha, Q, cutoff: librosa's alpha and Q, and the top bin's band edge in Hz.

    Raises:
        ValueError: n_bins or bins_per_octave < 1, fmin <= 0, the top bin's band edge above Nyquist,
            or hop_length not a positive multiple of 2^(n_octaves-1).
    """

    def __init__(self, sr, fmin, n_bins, bins_per_octave, filter_scale, window, scale, hop_length=None):
        sr, fmin = float(sr), float(fmin)
        if n_bins < 1 or bins_per_octave < 1:
            raise ValueError(f"CQT: n_bins and bins_per_octave must be >= 1, got {n_bins}, {bins_per_octave}")
        if fmin <= 0:
            raise ValueError(f"CQT: fmin must be > 0, got {fmin}")
        self.sr, self.fmin, self.n_bins, self.bpo = sr, fmin, int(n_bins), int(bins_per_octave)
        self.filter_scale, self.window, self.scale = float(filter_scale), _hashable(window), bool(scale)
        self.n_octaves = int(math.ceil(self.n_bins / self.bpo))
        self.n_filters = min(self.bpo, self.n_bins)
        self.freqs = cqt_frequencies(self.n_bins, fmin, self.bpo)
        r = 2.0 ** (1.0 / self.bpo)
        self.alpha = (r * r - 1.0) / (r * r + 1.0)
        self.Q = self.filter_scale / self.alpha
        self.lengths = self.Q * sr / self.freqs
        # librosa's check: the highest kernel's band edge (centre + half its noise bandwidth) below Nyquist
        self.cutoff = float(np.max(self.freqs * (1.0 + 0.5 * _window_bandwidth(self.window) / self.Q)))
        if self.cutoff > sr / 2:
            raise ValueError(
                f"CQT: the top bin f={self.freqs[-1]:.1f} Hz has its band edge at {self.cutoff:.1f} Hz, above the "
                f"Nyquist frequency {sr / 2:.1f} Hz; reduce n_bins or fmin (or raise sr)")
        if hop_length is not None:
            step = 2 ** (self.n_octaves - 1)
            if hop_length < 1 or hop_length % step != 0:
                raise ValueError(
                    f"CQT: hop_length={hop_length} must be a positive multiple of 2^(n_octaves-1) = {step} "
                    f"({self.n_octaves} octaves are decimated {self.n_octaves - 1} times); use e.g. "
                    f"hop_length={max(step, (hop_length // step) * step)} or fewer bins")
        top = self.freqs[-self.n_filters:]
        top_len = self.lengths[-self.n_filters:]
        # per top-octave kernel: librosa's integer window size and time origin
        self.t0 = np.floor(-top_len / 2).astype(np.int64)
        self.n = (np.floor(top_len / 2) - self.t0).astype(np.int64)
        # offsets d covered: d = -t0 - j, j = 0..n-1
        self.dmax = int(np.max(-self.t0))
        self.dmin = int(np.min(-self.t0 - self.n + 1))
        self.width = self.dmax - self.dmin + 1
        K = np.zeros((self.n_filters, self.width), dtype=np.complex128)
        for k in range(self.n_filters):
            w = window_samples(self.window, int(self.n[k]))
            j = np.arange(self.n[k])
            d = -self.t0[k] - j
            v = w / np.sum(np.abs(w)) * np.exp(-2j * np.pi * top[k] * d / sr)
            v *= np.sqrt(top_len[k]) if self.scale else top_len[k]
            K[k, d - self.dmin] = v
        self.kernels = K

    def octave_gain(self, i: int) -> float:
        """Factor (a float) applied to octave i (0 = top), computed with the top-octave kernels at rate
        sr/2^i: 2^(i/2) with scale=True, 2^i without."""
        return 2.0 ** (0.5 * i) if self.scale else 2.0 ** i

    def octave_bins(self, i: int):
        """(first kernel index used, number of bins), two ints, of octave i (0 = top); the lowest octave
        may be partial."""
        nb = min(self.n_filters, self.n_bins - i * self.n_filters)
        return self.n_filters - nb, nb

    def real_weight(self, dtype=torch.float32) -> torch.Tensor:
        """[n_filters, 2, width] real weights on the CPU, in dtype: (real, imaginary) rows of each kernel."""
        return torch.tensor(np.stack([self.kernels.real, self.kernels.imag], axis=1), dtype=dtype)


def check_input(x: torch.Tensor, name="CQT"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: input must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: input must be a floating-point tensor (float32/float64), got {x.dtype}; "
                        f"convert it with x.float()")
    if x.dim() not in (1, 2, 3):
        raise ValueError(f"{name}: input must be [T], [B, T] or [B, C, T], got shape {tuple(x.shape)}")


def frames(x: torch.Tensor, w: torch.Tensor, dmin: int, hop: int, n_frames: int, pad_mode: str,
            offset: int = 0) -> torch.Tensor:
    """out[r, f, c] = sum_d x[r, offset + f*hop + d] * w[c, d - dmin] for x [R, T] -> [R, n_frames, C]."""
    T = x.shape[-1]
    width = w.shape[-1]
    left = max(0, -(offset + dmin))
    right = max(0, offset + (n_frames - 1) * hop + dmin + width - T)
    if pad_mode == "constant" or (left == 0 and right == 0):
        xp = torch.nn.functional.pad(x, (left, right))
    else:
        xp = _reflect_pad(x, left, right)
    start = offset + dmin + left
    fr = xp[:, start:start + (n_frames - 1) * hop + width].unfold(-1, width, hop)  # [R, F, width]
    return fr @ w.t()


def _reflect_pad(x, left, right):
    # numpy/librosa 'reflect' (no edge repeat), repeated reflection when the pad is longer than x
    T = x.shape[-1]
    if T == 1:
        return torch.nn.functional.pad(x, (left, right), mode="replicate")
    idx = torch.arange(-left, T + right, device=x.device)
    period = 2 * (T - 1)
    idx = torch.remainder(idx, period)
    idx = torch.where(idx >= T, period - idx, idx)
    return x[:, idx]


def finish(c: torch.Tensor, output: str) -> torch.Tensor:
    """c [..., n_bins, F, 2] (real, imag) -> requested output."""
    if output == "complex":
        return torch.view_as_complex(c.contiguous()) if c.dtype in (torch.float32, torch.float64) else \
            torch.complex(c[..., 0].float(), c[..., 1].float())
    p = c[..., 0] * c[..., 0] + c[..., 1] * c[..., 1]
    if output == "power":
        return p
    # safe sqrt: no inf/NaN gradient at p == 0 (silent input); |d|C|/d re| = |re|/|C| <= 1 elsewhere
    return torch.sqrt(p.clamp_min(torch.finfo(p.dtype).tiny))


def _octave_cqt(x, weight, ker: CQTKernels, hop, pad_mode, output, decimate, filter):
    """The octave loop. x [R, T]; weight [n_filters, 2, width]; decimate(x, filter, levels) -> a tensor
    (levels == 1) or a list of the levels successive octaves, as octave_downsample."""
    filter_taps = filter.numel()
    R, T = x.shape
    n_frames = 1 + T // hop
    levels = ker.n_octaves - 1
    # 'constant': zero-pad the full-rate signal before decimating, by Z = 2^levels * (taps+1)/2 samples a
    # side, so the decimated octaves keep the low-passed signal's tails that spread past the ends
    # (dropping them costs ~10% of |C| on the edge frames). Z is a multiple of 2^levels: the
    # octaves stay on the same sample grid (level i sample m <-> full-rate sample 2^i m - Z).
    Z = (2 ** levels) * ((filter_taps + 1) // 2) if (levels > 0 and pad_mode == "constant") else 0
    xz = torch.nn.functional.pad(x, (Z, Z)) if Z else x
    octaves = decimate(xz, filter, levels) if levels > 0 else []
    sigs = [x] + (octaves if isinstance(octaves, list) else [octaves])
    outs = []
    for i in range(ker.n_octaves):
        first, nb = ker.octave_bins(i)
        w = weight[first:].reshape(nb * 2, -1)
        off = (Z >> i) if i > 0 else 0
        c = frames(sigs[i], w, ker.dmin, hop >> i, n_frames, pad_mode, off)  # [R, F, nb*2]
        outs.append(c.view(R, n_frames, nb, 2) * ker.octave_gain(i))
    c = torch.cat(outs[::-1], dim=2)  # bins ascending
    return finish(c.transpose(1, 2), output)  # [R, n_bins, F, 2] -> ...


class CQT(nn.Module):
    """Constant-Q transform (librosa.cqt conventions), computed octave by octave with shared kernels.

    Input [T], [B, T] or [B, C, T] (float32/float64); output [..., n_bins, 1 + T // hop_length],
    complex, magnitude (with a gradient-safe sqrt) or power. trainable=True makes the one octave of
    kernels (shared by all octaves) a parameter `kernels` [n_filters, 2, width] (real/imag rows);
    trainable_filter=True also makes the decimation filter a parameter.

    Args:
        sr: sample rate in Hz.
        hop_length: frame step in samples; a positive multiple of 2^(n_octaves-1), n_octaves =
            ceil(n_bins / bins_per_octave) (the lowest octave is decimated n_octaves-1 times).
        fmin: lowest bin's centre frequency in Hz (default C1, 32.70 Hz).
        n_bins, bins_per_octave: number of bins, bins per octave (default 8 octaves of 36).
        filter_scale, window, scale: as librosa.cqt (window: a scipy.signal.get_window name or tuple).
        pad_mode: "constant" (zeros, librosa's default) or "reflect".
        output: "complex", "magnitude" or "power".
        trainable: make the kernels a parameter (float32 [n_filters, 2, width], n_filters =
            min(bins_per_octave, n_bins)); else a non-persistent buffer.
        trainable_filter: make the decimation filter a parameter (float32 [taps]).
        downsample_filter: [taps], odd taps: the decimation FIR (default: a halfband_filter flat up to
            the top bin's band edge).

    Forward: x [T], [B, T] or [B, C, T], float32 or float64, on the module's device -> [n_bins, F],
    [B, n_bins, F] or [B, C, n_bins, F] with F = 1 + T // hop_length; complex64 / complex128 for
    output="complex", else real in x's dtype. Differentiable in x (and in the kernels and the filter
    when trainable).

    Raises:
        ValueError: (construction) a bad output or pad_mode, n_bins or bins_per_octave < 1, fmin <= 0,
            the top bin's band edge above Nyquist (or too close to it to decimate), or a hop_length
            that is not a multiple of 2^(n_octaves-1); (forward) x not [T], [B, T] or [B, C, T].
        TypeError: (forward) x is not a floating-point tensor.

    Example:
        C = dense_conv.CQT(output="magnitude")(torch.randn(4, 22050))  # [4, 288, 44]
    """

    def __init__(self, sr: float = 22050, hop_length: int = 512, fmin: float = 32.70319566257483,
                 n_bins: int = 288, bins_per_octave: int = 36, filter_scale: float = 1.0, window="hann",
                 scale: bool = True, pad_mode: str = "constant", output: str = "complex",
                 trainable: bool = False, trainable_filter: bool = False,
                 downsample_filter: Optional[torch.Tensor] = None):
        super().__init__()
        if output not in _OUTPUTS:
            raise ValueError(f"CQT: output must be one of {_OUTPUTS}, got {output!r}")
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"CQT: pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
        self.ker = CQTKernels(sr, fmin, n_bins, bins_per_octave, filter_scale, window, scale, hop_length)
        self.sr, self.hop_length, self.n_bins, self.bins_per_octave = float(sr), int(hop_length), int(n_bins), \
            int(bins_per_octave)
        self.pad_mode, self.output = pad_mode, output
        w = self.ker.real_weight(torch.float32)
        if trainable:
            self.kernels = nn.Parameter(w)
        else:
            self.register_buffer("kernels", w, persistent=False)
        if downsample_filter is None:
            # flat to the top kernel's band edge after decimation, alias-free below it
            edge = self.ker.cutoff / (self.sr / 2)  # fraction of Nyquist, same at every octave
            passband = max(DEFAULT_PASSBAND, edge / 2)
            if self.ker.n_octaves > 1 and passband >= 0.49:
                raise ValueError(f"CQT: the top bin's band edge is at {edge:.3f} of Nyquist; octave decimation "
                                 f"needs it below ~0.98; reduce n_bins or fmin")
            downsample_filter = halfband_filter(passband, DEFAULT_ATTENUATION_DB, dtype=torch.float64)
        f = downsample_filter.detach().clone().to(torch.float32)
        if trainable_filter:
            self.downsample_filter = nn.Parameter(f)
        else:
            self.register_buffer("downsample_filter", f, persistent=False)

    @property
    def frequencies(self) -> np.ndarray:
        """Centre frequencies of the bins in Hz: float64 numpy [n_bins], ascending."""
        return self.ker.freqs

    def extra_repr(self):
        """The text inside CQT(...) when the module is printed: sr, hop_length, n_bins, ..., filter_taps."""
        return (f"sr={self.sr:g}, hop_length={self.hop_length}, n_bins={self.n_bins}, "
                f"bins_per_octave={self.bins_per_octave}, output={self.output!r}, "
                f"filter_taps={self.downsample_filter.numel()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [T], [B, T] or [B, C, T] (float32/float64) -> [..., n_bins, 1 + T // hop_length]; see the class.

        Decimates with dense_conv.octave_downsample (the compiled extension is needed).
        """
        return self.transform(x, octave_downsample)

    def transform(self, x: torch.Tensor, decimate) -> torch.Tensor:
        """The CQT with `decimate` as the decimator; shapes, dtypes and errors as forward.

        decimate(x [R, T], filter [taps], levels) returns [R, ceil(T/2)] for levels=1, else a list of
        the levels successive octaves, as dense_conv.octave_downsample (which forward passes) or
        dense_conv.reference.octave_downsample_reference (pure PyTorch, no compiled extension).
        """
        check_input(x)
        lead = x.shape[:-1]
        xr = x.reshape(math.prod(lead), x.shape[-1])
        weight = self.kernels.to(x.dtype)
        filt = self.downsample_filter.to(x.dtype)
        c = _octave_cqt(xr, weight, self.ker, self.hop_length, self.pad_mode, self.output, decimate, filt)
        return c.reshape(*lead, *c.shape[1:])
