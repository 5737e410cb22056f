"""Constant-Q and variable-Q transforms computed octave by octave, trainable, following librosa >= 0.10
(`librosa.cqt`, `librosa.vqt`).

Conventions (librosa's): f_k = fmin * 2^(k/B); alpha_k = (r^2-1)/(r^2+1), r = 2^(1/B) (librosa's relative
bandwidth); Q_k = filter_scale/alpha_k; L_k = Q_k*sr/(f_k + gamma_k/alpha_k) (gamma = 0: the CQT, L_k =
Q*sr/f_k; gamma=None: librosa's ERB-based gamma_k = 24.7 alpha_k / 0.108); kernel k = window of
n_k = floor(L_k/2) - floor(-L_k/2) samples (periodic, scipy's get_window) times exp(2 pi i f_k t / sr),
t = floor(-L_k/2) ... , L1-normalised; frames centred on t*hop, 1 + T // hop of them; C[k, t] = L_k *
sum_d x[t*hop + d] * conj-free kernel(-d), divided by sqrt(L_k) when scale=True (a unit cosine at f_k
reads 0.5*sqrt(L_k)); zero padding ('constant'). exact_lengths=True replaces the n_k-sample window by
the continuous window of exactly L_k samples (see CQTKernels).

The octave method (the user's "iterative" CQT, and librosa's): the top octave of kernels is applied
at the full rate; the signal is low-passed and decimated by 2 (`octave_downsample`, a zero-phase
half-band FIR) and the *same* kernels give the next octave down, and so on. At octave i (0 = top)
the kernel of bin k is the top-octave kernel at rate sr/2^i, i.e. the same continuous window and
exponential stretched by 2^i. The VQT's lengths do not halve from octave to octave: each octave has
its own kernels, designed at the rate it is computed at.

Top bins near each octave's Nyquist (CQTKernels.raised_bins): the half-band decimator is flat and alias-free
only to 0.42 of its input's Nyquist (0.84 of the decimated octave's), and a decimated octave also loses its
kernels' spectrum past its own Nyquist (the definition's windows are sampled at the full rate). So each
decimated octave's top bins whose response to an impulse, computed after a decimation, differs from the
definition's by more than RAISE_TOLERANCE of its peak are computed on the less decimated signal (one level
up, two for short kernels, e.g. 12 bins per octave near Nyquist) with their kernels discretised at that
rate, in the same matmul as the octave above. This keeps every frame within 1e-4 of max|C| of the definition
up to librosa's own limit (the top bin's band edge at Nyquist; docs/cqt.md has the measurements). The
alternative, a sharper decimator (what this module did before: passband at the top bin's band edge, up to
439 taps), stays 1e-3 to 4e-2 away near Nyquist (the kernels' own spectrum past the octave's Nyquist is
still lost, and the transition band cannot reach Nyquist), at about the same speed; it was dropped.

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

__all__ = ["CQT", "VQT", "cqt_frequencies", "CQTKernels", "note_names"]

_OUTPUTS = ("complex", "magnitude", "power")
# A decimated octave's bin whose impulse response (its kernel on every other sample, low-passed by the
# decimator) differs from the definition's by more than this fraction of its peak is computed at a higher
# rate (CQTKernels.raised_bins). 1.2e-4 keeps every layout measured in docs/cqt.md within 1e-4 of max|C|.
RAISE_TOLERANCE = 1.2e-4


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


@functools.lru_cache(maxsize=16)
def _cosine_sum(window):
    """Coefficients b [m] with window(u) = sum_m b[m] cos(2 pi m u), u in [0, 1] (the continuous form of scipy's
    periodic window), or None when the window is not a cosine sum (kaiser, tukey, triang, ...)."""
    M = 128
    spectrum = np.fft.rfft(window_samples(window, M)) / M
    b = np.concatenate([spectrum.real[:1], 2 * spectrum.real[1:M // 4]])
    if np.abs(spectrum[M // 4:]).max() > 1e-12 or np.abs(spectrum.imag).max() > 1e-12:
        return None
    # the same coefficients must give the window at another (odd) length
    n = 101
    if np.abs(_cosine_sum_at(b, np.arange(n) / n) - window_samples(window, n)).max() > 1e-12:
        return None
    return b[:np.flatnonzero(np.abs(b) > 1e-15).max() + 1]


def _cosine_sum_at(b, u):
    return np.cos(2 * np.pi * np.multiply.outer(u, np.arange(len(b)))) @ b


@functools.lru_cache(maxsize=16)
def _continuous_magnitude(window) -> np.ndarray:
    # |w(u)| on a grid of 4096 points of [0, 1): means of its powers are exact for cosine sums of degree < 4096
    return np.abs(_cosine_sum_at(_cosine_sum(window), np.arange(4096) / 4096))


def _continuous_norm(window, norm, length: float) -> float:
    """The p-norm of the continuous window stretched over `length` samples, as the limit of _window_norm of its
    samples: length^(1/p) * (mean |w|^p)^(1/p), max|w| (inf), min|w| (-inf), length (0), 1 (None)."""
    if norm is None:
        return 1.0
    if norm == 0:
        return float(length)
    mag = _continuous_magnitude(window)
    if norm == np.inf:
        return float(mag.max())
    if norm == -np.inf:
        value = float(mag.min())
        return value if value >= np.finfo(np.float64).tiny else 1.0  # as _window_norm: a zero leaves it as is
    return float((length * np.mean(mag ** norm)) ** (1.0 / norm))


def _relative_bandwidth(freqs: np.ndarray, bpo: int) -> np.ndarray:
    """librosa's alpha per bin, (2^(2/b) - 1) / (2^(2/b) + 1), b the local bins per octave (centred log2
    differences, one-sided at the ends; bpo itself for a single bin)."""
    if len(freqs) == 1:
        local = np.array([float(bpo)])
    else:
        logf = np.log2(freqs)
        local = np.empty_like(freqs)
        local[0], local[-1] = 1 / (logf[1] - logf[0]), 1 / (logf[-1] - logf[-2])
        local[1:-1] = 2 / (logf[2:] - logf[:-2])
    r2 = 2.0 ** (2 / local)
    return (r2 - 1) / (r2 + 1)


def _two_factors(n: int) -> int:
    """How many times n > 0 divides by 2."""
    return (n & -n).bit_length() - 1


def _window_norm(w: np.ndarray, norm) -> float:
    # librosa.util.normalize's length of one filter (|filter| = |window|: the phasor has modulus 1);
    # below the smallest float64 it leaves the filter as it is
    mag = np.abs(w)
    if norm is None:
        return 1.0
    if norm == np.inf:
        length = mag.max()
    elif norm == -np.inf:
        length = mag.min()
    elif norm == 0:
        length = float(np.sum(mag > 0))
    else:
        length = float(np.sum(mag ** norm) ** (1.0 / norm))
    return float(length) if length >= np.finfo(np.float64).tiny else 1.0


def _check_number(name, value, positive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"CQT: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"CQT: {name} must be a finite number{' > 0' if positive else ''}, got {value}")
    return float(value)


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"CQT: {name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"CQT: {name} must be an int >= {minimum}, got {value}")
    return int(value)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"CQT: {name} must be a bool, got {value!r}")


def _check_norm(norm):
    if norm is None:
        return None
    if isinstance(norm, bool) or not isinstance(norm, (int, float, np.integer, np.floating)):
        raise TypeError(f"CQT: norm must be None or a number (1, 2, inf, -inf, 0, p > 0), got {norm!r}")
    if math.isnan(norm) or norm < 0 and norm != -math.inf:
        raise ValueError(f"CQT: norm must be None, inf, -inf, 0 or > 0 (librosa.util.normalize), got {norm}")
    return float(norm)


class CQTKernels:
    """Kernel sets and octave layout of a CQT / VQT (float64 numpy, computed once); used by CQT and cqt_definition.

    Arguments as CQT's (sr, fmin, n_bins, bins_per_octave, filter_scale, window, scale, hop_length, tuning,
    norm, gamma, exact_lengths; hop_length=None: every octave at its own rate). The bins are those of
    librosa.vqt(tuning=tuning, norm=norm, gamma=gamma) (librosa.cqt for gamma=0): fmin is raised by tuning
    bins; bin k has librosa's relative bandwidth alpha_k, Q_k = filter_scale / alpha_k, bandwidth offset
    gamma_k (gamma, or 24.7 alpha_k / 0.108 Hz for gamma=None: bandwidths a fixed fraction of the ERB) and
    length L_k = Q_k sr / (f_k + gamma_k / alpha_k) samples.

    Octave i (0 = top) is discretised, as librosa does, at rate sr/2^level(i), level(i) = min(i, number of
    factors of 2 in hop_length): the signal is decimated while the hop stays even, the remaining octaves
    get their own kernels at the last rate. With gamma=0 the lengths halve from octave to octave and the
    decimated octaves share the top octave's kernels; with gamma != 0 every octave has its own kernels, at
    its rate. `kernel_matrix(i, level)` gives octave i's kernels at any rate sr/2^level, level <= level(i),
    the continuous kernel sampled 2^(level(i) - level) times as densely (at level 0: the full-rate
    "definition" kernels). `raised_bins(filter)` says which top bins of the decimated shared octaves are
    computed at a higher rate (the octave method's accuracy near each octave's Nyquist frequency).

    Kernel of bin k at its discretisation rate, L = L_k / 2^level(i) samples long there:
        exact_lengths=False (librosa's): the periodic window of n = floor(L/2) - floor(-L/2) samples (scipy's
            get_window) from t = floor(-L/2), times exp(2 pi i f_k t / rate), divided by the p-norm of those
            window samples (librosa.util.normalize).
        exact_lengths=True: the continuous window w(u), u = t / L + 1/2 in [0, 1], i.e. exactly L_k / sr
            seconds long and centred on t = 0, at every integer t with |t| <= L/2, times the same
            exponential, divided by the window's continuous norm over L samples, the limit of the sampled
            p-norm: L^(1/p) (int_0^1 |w|^p du)^(1/p) (max|w| for inf, min|w| for -inf, L for 0), so that the
            normalisation does not depend on where the samples fall. It needs a cosine-sum window (hann,
            hamming, blackman, nuttall, blackmanharris, flattop, ('general_cosine', a), ...).
    Both are scaled by sqrt(L_k) (scale=True) or L_k (scale=False).

    Attributes:
        kernels: complex128 [n_filters, width], kernels[k', d - dmin] is the weight of x[t*hop + d] in the
            top octave.
        freqs, lengths: float64 [n_bins], every bin's centre frequency (Hz) and full-rate filter length L_k.
        alpha, Q, gammas: float64 [n_bins], librosa's alpha_k, Q_k and gamma_k (Hz).
        gamma, exact_lengths: the arguments (gamma None or a float).
        n_filters: min(bins_per_octave, n_bins), the kernels of one octave; n_octaves: ceil(n_bins / bpo).
        levels: list of n_octaves ints, level(i), where octave i's kernels are discretised (librosa's rate).
        compute_levels: list of n_octaves ints <= levels, where the octave method computes octave i: levels
            for gamma=0; for the VQT the deepest level at which the octave's kernels keep the top octave's
            margin, in kernel bandwidths, below that rate's Nyquist frequency. n_decimations: max(compute_levels).
        t0, n: int64 [n_filters], each top-octave kernel's first sample time and number of samples.
        dmin, dmax, width: the offsets d the top-octave kernels cover (width = dmax - dmin + 1).
        cutoff: librosa's band edge check value in Hz: max_k f_k (1 + window bandwidth / (2 Q_k)) + gamma_k / 2.
        rate_edge: the highest band edge (f_k + half the window's noise bandwidth sr / L_k) of any bin, as a
            fraction of the Nyquist frequency of the rate its octave is computed at (what the decimator passes).

    Raises:
        TypeError: a parameter of the wrong type (n_bins=None, tuning=None, gamma="erb", ...), naming it.
        ValueError: n_bins, bins_per_octave or hop_length < 1, fmin, sr or filter_scale <= 0, gamma < 0, a bad
            norm or window (or a window that is not a cosine sum with exact_lengths=True), or the top bin's band
            edge above Nyquist.

    Example:
        ker = CQTKernels(22050, 32.70319566257483, 84, 12, 1.0, "hann", True, 512, gamma=None)
        ker.lengths[:2]  # [~1462, ~1451]: the ERB offset shortens the low bins (CQT: ~11686, ~11030)
    """

    def __init__(self, sr, fmin, n_bins, bins_per_octave, filter_scale, window, scale, hop_length=None,
                 tuning=0.0, norm=1, gamma=0.0, exact_lengths=False):
        sr = _check_number("sr", sr)
        fmin = _check_number("fmin", fmin)
        n_bins = _check_int("n_bins", n_bins)
        bins_per_octave = _check_int("bins_per_octave", bins_per_octave)
        filter_scale = _check_number("filter_scale", filter_scale)
        if tuning is None:
            raise TypeError("CQT: tuning must be a float (fractions of a bin); to estimate it from a signal, "
                            "pass tuning=librosa.estimate_tuning(y=y, sr=sr, bins_per_octave=bins_per_octave)")
        tuning = _check_number("tuning", tuning, positive=False)
        self.norm = _check_norm(norm)
        if hop_length is not None:
            hop_length = _check_int("hop_length", hop_length)
        if gamma is not None:
            gamma = _check_number("gamma", gamma, positive=False)
            if gamma < 0:
                raise ValueError(f"CQT: gamma must be None (ERB-based) or a number >= 0 (Hz), got {gamma}")
        _check_bool("exact_lengths", exact_lengths)
        try:
            window_samples(_hashable(window), 16)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"CQT: window={window!r} is not a scipy.signal.get_window window: {e}") from None
        if exact_lengths and _cosine_sum(_hashable(window)) is None:
            raise ValueError(f"CQT: exact_lengths=True needs a cosine-sum window (hann, hamming, blackman, nuttall, "
                             f"blackmanharris, flattop, ('general_cosine', a), ...) for its continuous form; "
                             f"got window={window!r}")
        fmin = fmin * 2.0 ** (tuning / bins_per_octave)
        self.sr, self.fmin, self.n_bins, self.bpo, self.tuning = sr, fmin, n_bins, bins_per_octave, tuning
        self.filter_scale, self.window, self.scale = filter_scale, _hashable(window), bool(scale)
        self.gamma, self.exact_lengths = gamma, bool(exact_lengths)
        self.n_octaves = int(math.ceil(self.n_bins / self.bpo))
        self.n_filters = min(self.bpo, self.n_bins)
        self.freqs = cqt_frequencies(self.n_bins, fmin, self.bpo)
        self.alpha = _relative_bandwidth(self.freqs, self.bpo)
        self.Q = self.filter_scale / self.alpha
        self.gammas = self.alpha * 24.7 / 0.108 if gamma is None else np.full(self.n_bins, gamma)
        self.lengths = self.Q * sr / (self.freqs + self.gammas / self.alpha)
        # librosa's check: the highest kernel's band edge (centre + half its noise bandwidth) below Nyquist
        bandwidth = _window_bandwidth(self.window)
        self.cutoff = float(np.max(self.freqs * (1.0 + 0.5 * bandwidth / self.Q) + 0.5 * self.gammas))
        if self.cutoff > sr / 2:
            raise ValueError(
                f"CQT: the top bin f={self.freqs[-1]:.1f} Hz has its band edge at {self.cutoff:.1f} Hz, above the "
                f"Nyquist frequency {sr / 2:.1f} Hz; reduce n_bins or fmin (or raise sr)")
        twos = self.n_octaves if hop_length is None else _two_factors(hop_length)
        self.levels = [min(i, twos) for i in range(self.n_octaves)]
        # The octave method computes octave i at rate sr/2^compute_levels[i], the deepest level <= levels[i] where
        # its kernels keep the top octave's margin between their centre and the rate's Nyquist frequency, counted
        # in kernel bandwidths (sr / L_k): what bounds their spectra's reach past the decimator's passband. With
        # gamma=0 that is levels[i] (the same margins). The VQT's low kernels are relatively short: at librosa's
        # rate the shortest would have ~20 samples (ERB, 12 per octave) and err by ~1e-3.
        def margin(i, lvl):
            k = self.octave_bin_indices(i)
            return float(np.min((sr / 2 ** (lvl + 1) - self.freqs[k]) * self.lengths[k] / sr))

        self.compute_levels = [max(lvl for lvl in range(self.levels[i] + 1)
                                   if lvl == 0 or margin(i, lvl) >= margin(0, 0) * (1 - 1e-9))
                               for i in range(self.n_octaves)]
        self.n_decimations = max(self.compute_levels)
        edges = self.freqs + 0.5 * bandwidth * sr / self.lengths
        self.rate_edge = max(float(np.max(edges[self.octave_bin_indices(i)])) * 2 ** self.compute_levels[i] /
                             (sr / 2) for i in range(self.n_octaves))
        K, self.dmin, self.t0, self.n = self._build(0, 0)
        self.width = K.shape[1]
        self.dmax = self.dmin + self.width - 1
        self.kernels = K

    def octave_bin_indices(self, i: int) -> np.ndarray:
        """Global (ascending) bin indices of octave i (0 = top), int64 [nb], ascending."""
        first, nb = self.octave_bins(i)
        top = self.n_bins - 1 - i * self.n_filters
        return np.arange(top - nb + 1, top + 1)

    def _window(self, L: float, s: int):
        """(t, w, norm) of one kernel L samples long at its discretisation rate, sampled s times as densely:
        int64 sample times t (ascending, at the denser rate), float64 window values w [len(t)], and the divisor
        (the norm at the discretisation rate, times s: s times as many samples sum to s times as much)."""
        if self.exact_lengths:
            t = np.arange(math.ceil(-L * s / 2), math.floor(L * s / 2) + 1)
            w = _cosine_sum_at(_cosine_sum(self.window), t / (L * s) + 0.5)
            return t, w, s * _continuous_norm(self.window, self.norm, L)
        t0 = math.floor(-L / 2)
        n = math.floor(L / 2) - t0
        # for cosine-sum windows (hann, ...) the periodic window of n*s samples is the n-sample one stretched
        w = window_samples(self.window, n * s)
        return s * t0 + np.arange(n * s), w, s * _window_norm(window_samples(self.window, n), self.norm)

    def _build(self, i, level):
        k = self.octave_bin_indices(i)
        lvl = self.levels[i]
        s = 2 ** (lvl - level)
        f = self.freqs[k]
        amp = np.sqrt(self.lengths[k]) if self.scale else self.lengths[k]
        # librosa's filter lengths at the rate it discretises octave i (exact: a division by a power of 2)
        windows = [self._window(L, s) for L in self.lengths[k] / 2 ** lvl]
        dmax = max(-int(t[0]) for t, _, _ in windows)
        dmin = min(-int(t[-1]) for t, _, _ in windows)
        K = np.zeros((len(k), dmax - dmin + 1), dtype=np.complex128)
        for b, (t, w, nrm) in enumerate(windows):
            d = -t
            K[b, d - dmin] = w / nrm * np.exp(-2j * np.pi * f[b] * d / (self.sr / 2 ** level)) * amp[b]
        t0 = np.array([t[0] for t, _, _ in windows], dtype=np.int64)
        n = np.array([len(t) for t, _, _ in windows], dtype=np.int64)
        return K, dmin, t0, n

    def kernel_matrix(self, i: int, level: int):
        """(K complex128 [nb, width], dmin): octave i's kernels applied at rate sr/2^level (level <= levels[i]),
        sampled 2^(levels[i] - level) times as densely as where they are discretised;
        K[b, d - dmin] weighs x_level[t*hop/2^level + d]; no further gain applies."""
        if level > self.levels[i]:
            raise ValueError(f"CQTKernels: octave {i} is discretised at level {self.levels[i]}, not above")
        K, dmin, _, _ = self._build(i, level)
        return K, dmin

    def raised_bins(self, h: np.ndarray) -> dict:
        """{(octave i, lift j): number of bins}: the top bins of decimated octaves computed j >= 1 levels up
        (at level i - j, with kernel_matrix(i, i - j)) when the signal is decimated with the FIR h [taps]
        (float64 numpy, odd, centred); within an octave a larger lift takes higher bins. Empty when none is.

        A bin computed after a decimation responds to an impulse at the full rate with its kernel on every
        other sample, low-passed by h; the definition with the window at the full rate. Where the two differ
        by more than RAISE_TOLERANCE of its peak, at any offset, the bin (and every bin above it) goes one
        level up, until it does not or reaches the full rate. The difference is the same at every decimated
        octave (octave j+1's kernels at level 1 against level 0; the earlier decimations are wider relative to
        the band), so it is computed once per lift."""
        lift = np.zeros(self.n_filters, dtype=np.int64)  # levels up, per shared kernel row
        leaky = np.ones(self.n_filters, dtype=bool)
        for j in range(self.n_octaves - 1):
            if not self.shared(j + 1):
                break
            K0, d0 = self.kernel_matrix(j + 1, 0)  # the definition: [nb, w0], offsets d0 ..
            K1, d1 = self.kernel_matrix(j + 1, 1)  # computed at level 1: [nb, w1], offsets 2 * (d1 ..)
            up = np.zeros((K1.shape[0], 2 * K1.shape[1] - 1), dtype=np.complex128)
            up[:, ::2] = K1
            eff = np.stack([np.convolve(row, h) for row in up])  # offsets 2 * d1 - (taps - 1) // 2 ..
            e0 = 2 * d1 - (h.size - 1) // 2
            lo, hi = min(d0, e0), max(d0 + K0.shape[1], e0 + eff.shape[1])
            diff = np.zeros((K0.shape[0], hi - lo), dtype=np.complex128)
            diff[:, d0 - lo:d0 - lo + K0.shape[1]] = K0
            diff[:, e0 - lo:e0 - lo + eff.shape[1]] -= eff
            rows = np.zeros(self.n_filters, dtype=bool)
            rows[self.n_filters - K0.shape[0]:] = np.abs(diff).max(1) > RAISE_TOLERANCE * np.abs(K0).max(1)
            leaky &= np.logical_or.accumulate(rows)  # from the lowest leaky bin up
            if not leaky.any():
                break
            lift += leaky
        raised = {}
        for i in range(1, self.n_octaves):
            first, nb = self.octave_bins(i)
            if self.shared(i):
                counts = np.bincount(np.minimum(lift[first:], i), minlength=i + 1)
                raised.update({(i, j): int(n) for j, n in enumerate(counts) if j > 0 and n > 0})
        return raised

    def shared(self, i: int) -> bool:
        """Whether octave i uses the shared top-octave kernels (decimated to its own rate): the top octave, and
        with gamma=0 every octave decimated i times (its kernels at rate sr/2^i are the top octave's)."""
        return self.compute_levels[i] == i and (i == 0 or self.gamma == 0)

    def octave_gain(self, i: int) -> float:
        """Factor (a float) applied to octave i (0 = top) when computed with the shared top-octave kernels
        at rate sr/2^i: 2^(i/2) with scale=True, 2^i without."""
        return 2.0 ** (0.5 * i) if self.scale else 2.0 ** i

    def octave_bins(self, i: int):
        """(first kernel index used, number of bins), two ints, of octave i (0 = top); the lowest octave
        may be partial."""
        nb = min(self.n_filters, self.n_bins - i * self.n_filters)
        return self.n_filters - nb, nb

    def real_weight(self, dtype=torch.float32) -> torch.Tensor:
        """[n_filters, 2, width] real weights on the CPU, in dtype: (real, imaginary) rows of each kernel."""
        return _real_rows(self.kernels, dtype)


def _raised_rows(ker: CQTKernels, raised: dict, i: int, j: int):
    """(kernels complex128 [n, w], dmin) of the bins of octave i raised by j levels (raised: {(octave, lift):
    n}, as CQTKernels.raised_bins), at level i - j, trimmed to their non-zero columns."""
    K, dmin = ker.kernel_matrix(i, i - j)
    above = sum(n for (o, lift), n in raised.items() if o == i and lift > j)  # higher bins, raised further
    K = K[K.shape[0] - above - raised[(i, j)]:K.shape[0] - above]
    cols = np.flatnonzero(np.any(K != 0, axis=0))
    return K[:, cols[0]:cols[-1] + 1], dmin + int(cols[0])


def _real_rows(K, dtype):
    return torch.tensor(np.stack([K.real, K.imag], axis=1), dtype=dtype)


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
    return frame_view(x, dmin, w.shape[-1], hop, n_frames, pad_mode, offset) @ w.t()


def frame_view(x: torch.Tensor, dmin: int, width: int, hop: int, n_frames: int, pad_mode: str,
               offset: int = 0) -> torch.Tensor:
    """view[r, f, d - dmin] = x[r, offset + f*hop + d], d = dmin .. dmin+width-1, x [R, T] padded as pad_mode
    -> [R, n_frames, width] (a view of the padded signal)."""
    T = x.shape[-1]
    left = max(0, -(offset + dmin))
    right = max(0, offset + (n_frames - 1) * hop + dmin + width - T)
    if left == 0 and right == 0:
        xp = x  # (no copy of the signal when the frames lie inside it)
    elif pad_mode == "constant":
        xp = torch.nn.functional.pad(x, (left, right))
    else:
        xp = _reflect_pad(x, left, right)
    start = offset + dmin + left
    return xp[:, start:start + (n_frames - 1) * hop + width].unfold(-1, width, hop)


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
    if output == "magnitude" and c.dtype in (torch.float32, torch.float64) and c.is_contiguous():
        # |C| of the complex view: one pass each way, and its gradient at C == 0 (silent input) is 0, not NaN
        return torch.view_as_complex(c).abs()
    # one unbind, not an indexing per use: the backward stacks the two gradients once instead of zero-filling
    # a full-size gradient for every c[..., k]
    re, im = c.unbind(-1)
    p = re * re + im * im
    if output == "power":
        return p
    # safe sqrt: no inf/NaN gradient at p == 0 (silent input); |d|C|/d re| = |re|/|C| <= 1 elsewhere
    return torch.sqrt(p.clamp_min(torch.finfo(p.dtype).tiny))


def reflect_margins(ker: CQTKernels, own_dmin: dict, raised_dmin: dict, taps: int, hop: int):
    """(left, right) full-rate samples of reflection that cover every octave's kernels (own_dmin: {octave:
    (dmin, dmax)} of the own-kernel octaves, raised_dmin: {(octave, lift): (dmin, dmax)} of the raised bins)
    and the decimators' reach: the octaves then see the reflect-padded full-rate signal, as the definition
    does."""
    reach = (taps + 1) // 2
    left = right = 0
    spans = [(ker.compute_levels[i], (ker.dmin, ker.dmax) if ker.shared(i) else own_dmin[i]) for i in range(ker.n_octaves)]
    spans += [(i - j, span) for (i, j), span in raised_dmin.items()]
    for lvl, (dmin, dmax) in spans:
        left = max(left, (2 ** lvl) * (max(0, -dmin) + reach))
        right = max(right, (2 ** lvl) * (max(0, dmax) + reach) + hop)
    step = 2 ** ker.n_decimations
    return -(-left // step) * step, right  # left: a multiple of 2^n_decimations keeps the octaves aligned


class _GroupWeights(torch.autograd.Function):
    """The weights of the matmuls that assemble several kernel blocks (or scale one), as one autograd node.

    layout: per output (rows, width, [(source, r0, r1, row, col, gain), ...]): output [rows, 2, width] is zero but
    for output[row:row + r1 - r0, :, col:col + w] = gain * sources[source][r0:r1] (w: the source's width). The shared
    top-octave kernels serve every level: recorded op by op, autograd would keep a scaling, pads, a concatenation
    and a slice gradient as large as the kernels per level, then sum them; here the backward is one zero-filled
    gradient per shared source and one scaled add per block (in a fixed order: deterministic)."""

    @staticmethod
    def forward(ctx, layout, *sources):
        ctx.layout, ctx.shapes = layout, [t.shape for t in sources]
        outs = []
        for rows, width, blocks in layout:
            out = sources[0].new_zeros(rows, 2, width)
            for src, r0, r1, row, col, gain in blocks:
                block = sources[src][r0:r1]
                torch.mul(block, gain, out=out[row:row + r1 - r0, :, col:col + block.shape[-1]])
            outs.append(out)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        uses = [0] * len(ctx.shapes)
        for _, _, blocks in ctx.layout:
            for src, *_ in blocks:
                uses[src] += 1
        grad_sources = [None] * len(ctx.shapes)
        for (_, _, blocks), g in zip(ctx.layout, grads):
            for src, r0, r1, row, col, gain in blocks:
                shape = ctx.shapes[src]
                part = g[row:row + r1 - r0, :, col:col + shape[-1]]
                if uses[src] == 1 and (r0, r1) == (0, shape[0]):  # a whole source placed once: its slice
                    grad_sources[src] = part if gain == 1 else part * gain
                    continue
                if grad_sources[src] is None:
                    grad_sources[src] = g.new_zeros(shape)
                grad_sources[src][r0:r1].add_(part, alpha=gain)
        return (None, *grad_sources)


def level_matmuls(weight, own, raised, ker: CQTKernels):
    """The matmuls of every rate: {level: [(a, b, wt [b - a, 2 rows], [(octave, lift, rows), ...]), ...]}.

    weight [n_filters, 2, width] (shared top octave); own: {octave: (kernels [nb, 2, w], dmin, dmax)} for the octaves
    computed with their own kernels; raised: {(octave, lift): the same} for the top bins of decimated octaves
    computed `lift` levels up (CQTKernels.raised_bins; lift 1 in the same matmul as the octave above). Each group of
    kernel blocks is one matmul: its blocks zero-padded to their common offsets a .. b - 1 (for blocks of similar
    widths, where one wide matmul beats several narrow ones), stacked, transposed for `frames @ wt`; its rows are
    its blocks' bins in order. A block alone in its group, unscaled, is used as it is (a view); the other groups
    are assembled by one _GroupWeights node. A function of the kernels only: CQT._operands builds it once per
    kernel version when no gradient flows to the kernels."""
    sources = [weight]  # the tensors _GroupWeights reads; index 0: the shared kernels
    layout, assembled = [], []  # _GroupWeights' outputs, and where each goes: (level, index in the level)
    matmuls = {}
    for lvl in range(ker.n_decimations + 1):
        # at this rate: octave lvl's shared kernels (less its raised top bins), the raised bins of the octaves
        # below whose lift reaches it, and the own-kernel octaves (all at the last rate)
        first, _ = ker.octave_bins(lvl)
        top = ker.n_filters - sum(k.shape[0] for (o, _), (k, _, _) in raised.items() if o == lvl)
        # blocks (kernels, first row, last row + 1, dmin, octave, lift, gain)
        # (the bins raised by one level are about as wide as the shared kernels: one matmul with them)
        # (the raised top bins of octave lvl+1 first: the group's rows are then ascending bins, next to each other)
        shared = [(k, 0, k.shape[0], dmin, o, j, 1.0) for (o, j), (k, dmin, _) in raised.items()
                  if o - j == lvl and j == 1]
        if top > first and ker.shared(lvl):
            shared.append((weight, first, top, ker.dmin, lvl, 0, ker.octave_gain(lvl)))
        groups = [shared] if shared else []
        groups += [[(k, 0, k.shape[0], dmin, o, j, 1.0)] for (o, j), (k, dmin, _) in raised.items()
                   if o - j == lvl and j > 1]
        groups += [[(k, 0, k.shape[0], dmin, o, 0, 1.0)] for o, (k, dmin, _) in own.items()
                   if ker.compute_levels[o] == lvl]
        if not groups:  # every bin of this, the lowest, octave is raised
            continue
        matmuls[lvl] = []
        for group in groups:
            a = min(dmin for _, _, _, dmin, _, _, _ in group)
            b = max(dmin + k.shape[-1] for k, _, _, dmin, _, _, _ in group)
            rows = sum(r1 - r0 for _, r0, r1, _, _, _, _ in group)
            bins = [(o, j, r1 - r0) for _, r0, r1, _, o, j, _ in group]
            k, r0, r1, dmin, _, _, gain = group[0]
            if len(group) == 1 and (r0, r1, dmin, dmin + k.shape[-1], gain) == (0, k.shape[0], a, b, 1.0):
                matmuls[lvl].append((a, b, k.reshape(rows * 2, b - a).t(), bins))
                continue
            blocks, row = [], 0
            for k, r0, r1, dmin, _, _, gain in group:
                src = next((i for i, t in enumerate(sources) if t is k), len(sources))
                if src == len(sources):
                    sources.append(k)
                blocks.append((src, r0, r1, row, dmin - a, gain))
                row += r1 - r0
            layout.append((rows, b - a, tuple(blocks)))
            assembled.append((lvl, len(matmuls[lvl])))
            matmuls[lvl].append((a, b, None, bins))
    for (lvl, i), w in zip(assembled, _GroupWeights.apply(tuple(layout), *sources) if layout else ()):
        a, b, _, bins = matmuls[lvl][i]
        matmuls[lvl][i] = (a, b, w.view(w.shape[0] * 2, b - a).t(), bins)
    return matmuls


def _octave_cqt(x, matmuls, own_dmin, raised_dmin, ker: CQTKernels, hop, pad_mode, output, decimate, filter):
    """The octave loop. x [R, T]; matmuls: level_matmuls' (the kernels); own_dmin, raised_dmin: CQT.own_dmin,
    CQT.raised_dmin (each block's dmin, dmax); decimate(x, filter, levels) -> a tensor (levels == 1) or a list
    of the levels successive octaves, as octave_downsample."""
    taps = filter.numel()
    R, T = x.shape
    n_frames = 1 + T // hop
    levels = ker.n_decimations
    # 'reflect': reflect the full-rate signal far enough for every octave (then as 'constant'), so that
    # every frame sees the same padded signal as the definition
    P = 0
    if pad_mode == "reflect":
        P, right = reflect_margins(ker, own_dmin, raised_dmin, taps, hop)
        x = _reflect_pad(x, P, right)
    # zero-pad the (padded) full-rate signal before decimating, by Z = 2^levels * (taps+1)/2 samples a side,
    # so the decimated octaves keep the low-passed signal's tails that spread past the ends (dropping them
    # costs ~10% of |C| on the edge frames). Z is a multiple of 2^levels: the octaves stay on the same
    # sample grid (level i sample m <-> full-rate sample 2^i m - Z).
    Z = (2 ** levels) * ((taps + 1) // 2) if levels > 0 else 0
    xz = torch.nn.functional.pad(x, (Z, Z)) if Z else x
    octaves = decimate(xz, filter, levels) if levels > 0 else []
    sigs = [xz] + (octaves if isinstance(octaves, list) else [octaves])
    # every block of bins (octave o, lift j) -> (its group's output [R, F, rows, 2], first row, rows); within an
    # octave, higher lifts hold higher bins
    blocks = {}
    for lvl, groups in matmuls.items():
        # the frames over all the groups' offsets are copied out once; each group's matmul reads its own columns
        # of them (a strided view BLAS takes as it is)
        lo = min(a for a, _, _, _ in groups)
        width = max(b for _, b, _, _ in groups) - lo
        fr = frame_view(sigs[lvl], lo, width, hop >> lvl, n_frames, "constant", (Z + P) >> lvl)
        fr = fr.reshape(R * n_frames, width)  # a copy when R > 1 (overlapping frames of several rows)
        for a, b, wt, group in groups:
            c = (fr[:, a - lo:b - lo] @ wt).view(R, n_frames, wt.shape[1] // 2, 2)  # [R, F, rows, 2]
            row = 0
            for o, j, rows in group:
                blocks[(o, j)] = (c, row, rows)
                row += rows
    # bins ascending, [R, n_bins, F, 2] contiguous (one copy, which view_as_complex then takes as it is); a
    # group whose rows come next to each other in that order goes in whole (no per-block split to undo in the
    # backward)
    order = sorted(blocks, key=lambda b: (-b[0], b[1]))
    pieces, k = [], 0
    while k < len(order):
        c, row, rows = blocks[order[k]]
        n = 1
        while k + n < len(order) and blocks[order[k + n]][0] is c and blocks[order[k + n]][1] == row + rows:
            rows += blocks[order[k + n]][2]
            n += 1
        pieces.append(c if rows == c.shape[2] else c.narrow(2, row, rows))
        k += n
    return finish(torch.cat([p.transpose(1, 2) for p in pieces], dim=1), output)


def _default_filter(ker: CQTKernels) -> torch.Tensor:
    """The decimation FIR [taps] (float64) of a CQT built without one. gamma=0: the default half-band design
    (83 taps), the shared octaves' top bins beyond its clean band being raised (CQTKernels.raised_bins). A VQT's
    octaves have their own kernels, not raised: the filter is flat up to their band edge after decimation."""
    passband = DEFAULT_PASSBAND
    if ker.gamma != 0:
        edge = ker.rate_edge  # fraction of Nyquist of the highest band edge, at the rate each octave runs at
        passband = max(passband, edge / 2)
        if ker.n_decimations > 0 and passband >= 0.49:
            raise ValueError(f"VQT: the kernels' band edge reaches {edge:.3f} of their octave's Nyquist frequency; "
                             f"octave decimation needs it below ~0.98; reduce n_bins, fmin or gamma")
    return halfband_filter(passband, DEFAULT_ATTENUATION_DB, dtype=torch.float64)


_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64,
            torch.float32: torch.float32, torch.float64: torch.float64}


def _check_dtype(dtype):
    """None or a torch/numpy complex64/complex128 (or float32/float64) -> the real compute dtype or None."""
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype):
        try:
            dtype = getattr(torch, np.dtype(dtype).name)
        except (TypeError, AttributeError):
            raise TypeError(f"CQT: dtype must be None or a complex64/complex128 dtype, got {dtype!r}") from None
    if dtype not in _REAL_OF:
        raise ValueError(f"CQT: dtype must be None, complex64 or complex128 (or float32/float64), got {dtype}")
    return _REAL_OF[dtype]


class CQT(nn.Module):
    """Constant-Q transform (librosa.cqt conventions), computed octave by octave with shared kernels.

    gamma != 0 gives the variable-Q transform (see VQT, whose default is librosa.vqt's gamma=None).

    Input [T], [B, T] or [B, C, T] (float32/float64); output [..., n_bins, 1 + T // hop_length],
    complex, magnitude (with a gradient-safe sqrt) or power. The signal is decimated by 2
    (`octave_downsample`) between octaves while the hop stays even, as librosa does; octaves below that
    (hop_length with fewer than n_octaves-1 factors of 2, e.g. an odd hop) are computed at the last rate
    with their own, longer kernels. The top bins of a decimated octave that the decimator does not pass
    cleanly (near its Nyquist: `raised_bins`, {(octave, levels up): bins}) are computed on the less decimated
    signal with their own kernels (see the module docstring). trainable=True makes the one octave of kernels
    shared by the decimated octaves a parameter `kernels` [n_filters, 2, width] (real/imag rows), and the own
    kernels of the other octaves and of the raised bins parameters too (`octave_kernels`, `raised_kernels`,
    [bins, 2, w] each); trainable_filter=True also makes the decimation filter a parameter.

    Args:
        sr: sample rate in Hz.
        hop_length: frame step in samples, any int >= 1 (the frames are centred on t * hop_length).
        fmin: lowest bin's centre frequency in Hz (default C1, 32.70 Hz; None: C1, as librosa).
        n_bins, bins_per_octave: number of bins, bins per octave (default 8 octaves of 36).
        filter_scale, window, scale: as librosa.cqt (window: a scipy.signal.get_window name or tuple).
        pad_mode: "constant" (zeros, librosa's default) or "reflect" (of the full-rate signal, at every
            octave; librosa reflects each decimated octave instead, which differs on the edge frames).
        output: "complex", "magnitude" or "power".
        trainable: make the kernels parameters (float32 [n_filters, 2, width], n_filters =
            min(bins_per_octave, n_bins), plus `octave_kernels`, if any); else non-persistent buffers.
        trainable_filter: make the decimation filter a parameter (float32 [taps]).
        downsample_filter: [taps], odd taps: the decimation FIR (default: halfband_filter(), 83 taps, flat
            to 0.42 of Nyquist); the bins it does not pass cleanly are computed at a higher rate (the choice is
            made once, with this filter, at construction).
        tuning: (keyword) offset of fmin in fractions of a bin, as librosa's: fmin * 2^(tuning /
            bins_per_octave); default 0.0. None (librosa's "estimate from the signal") is refused: the
            kernels are fixed at construction; pass librosa.estimate_tuning(y=..., sr=..., bins_per_octave=...).
        norm: (keyword) filter normalisation, librosa's: each filter has unit p-norm (1, the default; 2;
            inf; -inf; 0; any p > 0) at the rate where it is discretised, or None (no normalisation).
        dtype: (keyword) None (complex of x's dtype, as librosa) or complex64 / complex128 (torch or numpy;
            float32 / float64 name the same precision): x is computed in that precision; output="complex"
            returns that complex dtype, "magnitude" / "power" its real dtype.
        gamma: (keyword) bandwidth offset in Hz, >= 0, as librosa.vqt's (0.0, the default: the CQT; None: the
            ERB-based VQT). With gamma != 0 every decimated octave has its own kernels (see VQT).
        exact_lengths: (keyword) False (the default, librosa's): each octave's windows have whole numbers of
            samples at the rate where the octave is discretised, n = floor(L/2) - floor(-L/2) for a length L
            there, the same shapes at every octave. True: every bin's kernel is its continuous window, exactly
            L_k / sr seconds long and centred, sampled at its octave's rate (see CQTKernels); it needs a
            cosine-sum window (hann, hamming, blackman, ...; others raise ValueError naming window), and
            `norm` then takes the continuous window's p-norm (the limit of the sampled window's: for norm=1
            a unit cosine at f_k reads 0.5 sqrt(L_k) at every octave). The two differ by the rounding of the
            lengths: max|dC| / max|C| ~1e-2 (12 or 36 bins per octave, hann, 22050 Hz, every octave alike),
            ~8e-3 (24 per octave), up to ~8e-2 in the VQT's lowest octave (ERB, 12 per octave). With gamma=0
            the exact kernels of the decimated octaves are still the top octave's, shared. Windows with
            jumps at their ends (hamming, boxcar) have spectra reaching past the decimator's passband: the
            octave method is then ~1e-2 away from the full-rate cqt_definition(exact_lengths=True), against
            <= 1e-4 for hann or blackman.

    Forward: x [T], [B, T] or [B, C, T], float32 or float64, on the module's device -> [n_bins, F],
    [B, n_bins, F] or [B, C, n_bins, F] with F = 1 + T // hop_length; complex64 / complex128 for
    output="complex", else real (in x's dtype, or dtype's). Any T >= 0 with pad_mode="constant" (as
    librosa, which raises only when it early-downsamples, which this module does not); T >= 1 with
    "reflect". Differentiable in x (and in the kernels and the filter when trainable).

    Raises:
        TypeError: (construction) a parameter of the wrong type, named (n_bins=None, hop_length=2.5,
            tuning=None, norm="l1", dtype="x", gamma="erb", exact_lengths=1, ...); (forward) x is not a
            floating-point tensor.
        ValueError: (construction) a bad output, pad_mode, norm or window (or a window that is not a cosine
            sum with exact_lengths=True), n_bins, bins_per_octave or hop_length < 1, sr, fmin or filter_scale
            <= 0, gamma < 0, the top bin's band edge above Nyquist (librosa's check; with gamma=0 any top bin
            up to it is accepted; with gamma != 0 the decimated octaves' band edge must stay below ~0.98 of
            their Nyquist); (forward) x not [T], [B, T] or [B, C, T], or empty with pad_mode="reflect".

    Example:
        C = dense_conv.CQT(output="magnitude")(torch.randn(4, 22050))  # [4, 288, 44]
        E = dense_conv.CQT(exact_lengths=True)(torch.randn(22050))  # [288, 44], exact per-bin lengths
    """

    def __init__(self, sr: float = 22050, hop_length: int = 512, fmin: Optional[float] = 32.70319566257483,
                 n_bins: int = 288, bins_per_octave: int = 36, filter_scale: float = 1.0, window="hann",
                 scale: bool = True, pad_mode: str = "constant", output: str = "complex",
                 trainable: bool = False, trainable_filter: bool = False,
                 downsample_filter: Optional[torch.Tensor] = None, *, tuning: float = 0.0,
                 norm: Optional[float] = 1, dtype=None, gamma: Optional[float] = 0.0, exact_lengths: bool = False):
        super().__init__()
        if output not in _OUTPUTS:
            raise ValueError(f"CQT: output must be one of {_OUTPUTS}, got {output!r}")
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"CQT: pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
        for name, flag in (("scale", scale), ("trainable", trainable), ("trainable_filter", trainable_filter)):
            _check_bool(name, flag)
        self.compute_dtype = _check_dtype(dtype)
        _check_int("hop_length", hop_length)
        if fmin is None:
            fmin = 32.70319566257483  # C1, librosa's default
        self.ker = CQTKernels(sr, fmin, n_bins, bins_per_octave, filter_scale, window, scale, hop_length,
                              tuning, norm, gamma, exact_lengths)
        self.sr, self.hop_length, self.n_bins, self.bins_per_octave = self.ker.sr, int(hop_length), \
            self.ker.n_bins, self.ker.bpo
        self.pad_mode, self.output = pad_mode, output
        if downsample_filter is None:
            downsample_filter = _default_filter(self.ker)
        if not isinstance(downsample_filter, torch.Tensor) or downsample_filter.dim() != 1 \
                or downsample_filter.numel() % 2 == 0:
            raise ValueError("CQT: downsample_filter must be a 1-D tensor with an odd number of taps")
        w = self.ker.real_weight(torch.float32)
        own = {i: self.ker.kernel_matrix(i, self.ker.compute_levels[i]) for i in range(self.ker.n_octaves)
               if not self.ker.shared(i)}
        self.own_octaves = sorted(own)
        self.own_dmin = {i: (own[i][1], own[i][1] + own[i][0].shape[1] - 1) for i in own}
        own_w = [_real_rows(own[i][0], torch.float32) for i in self.own_octaves]
        # top bins of the decimated octaves that the decimator does not pass cleanly: at a higher rate
        self.raised_bins = self.ker.raised_bins(downsample_filter.detach().cpu().double().numpy())
        self.raised_blocks = sorted(self.raised_bins)  # (octave, lift)
        raised = {(i, j): _raised_rows(self.ker, self.raised_bins, i, j) for i, j in self.raised_blocks}
        self.raised_dmin = {b: (raised[b][1], raised[b][1] + raised[b][0].shape[1] - 1) for b in raised}
        raised_w = [_real_rows(raised[b][0], torch.float32) for b in self.raised_blocks]
        if trainable:
            self.kernels = nn.Parameter(w)
            if own_w:
                self.octave_kernels = nn.ParameterList([nn.Parameter(t) for t in own_w])
            if raised_w:
                self.raised_kernels = nn.ParameterList([nn.Parameter(t) for t in raised_w])
        else:
            self.register_buffer("kernels", w, persistent=False)
            for i, t in zip(self.own_octaves, own_w):
                self.register_buffer(f"octave_kernels_{i}", t, persistent=False)
            for (i, j), t in zip(self.raised_blocks, raised_w):
                self.register_buffer(f"raised_kernels_{i}_{j}", t, persistent=False)
        f = downsample_filter.detach().clone().to(torch.float32)
        if trainable_filter:
            self.downsample_filter = nn.Parameter(f)
        else:
            self.register_buffer("downsample_filter", f, persistent=False)
        self._kept_operands = {}  # (device, dtype) -> (the tensors' identities and versions, _operands' result)

    def _operands(self, dtype, device):
        """(level_matmuls of the kernels, the decimation filter) in `dtype`. Built once per (device, dtype) and kept
        while the kernels and the filter are unchanged (their identity and version counter) when no gradient flows
        to them: a call then makes no copy of its kernels (on a GPU ~30 launches fewer per call: conversion,
        padding, concatenation, scaling per group)."""
        kernels = [self.kernels, *self._own_weights(), *self._raised_weights()]
        tensors = kernels + [self.downsample_filter]

        def build():
            own = {i: (k.to(dtype), *self.own_dmin[i]) for i, k in zip(self.own_octaves, kernels[1:])}
            raised = {b: (k.to(dtype), *self.raised_dmin[b])
                      for b, k in zip(self.raised_blocks, kernels[1 + len(self.own_octaves):])}
            return level_matmuls(self.kernels.to(dtype), own, raised, self.ker), self.downsample_filter.to(dtype)

        grads = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if grads or any(t.is_inference() for t in tensors):
            return build()  # (autograd through the kernels; inference tensors have no version counter)
        state = tuple((id(t), t._version) for t in tensors)
        kept = self._kept_operands.get((device, dtype))
        if kept is None or kept[0] != state:
            kept = self._kept_operands[(device, dtype)] = (state, build())
        return kept[1]

    def _apply(self, fn, *args, **kwargs):
        # .to() / .cuda() / .double() replace the kernels: drop what was built from the old ones
        self._kept_operands = {}
        return super()._apply(fn, *args, **kwargs)

    def _own_weights(self):
        if hasattr(self, "octave_kernels"):
            return list(self.octave_kernels)
        return [getattr(self, f"octave_kernels_{i}") for i in self.own_octaves]

    def _raised_weights(self):
        if hasattr(self, "raised_kernels"):
            return list(self.raised_kernels)
        return [getattr(self, f"raised_kernels_{i}_{j}") for i, j in self.raised_blocks]

    @property
    def frequencies(self) -> np.ndarray:
        """Centre frequencies of the bins in Hz: float64 numpy [n_bins], ascending."""
        return self.ker.freqs

    def extra_repr(self):
        """The text inside CQT(...) when the module is printed: sr, hop_length, n_bins, ..., filter_taps (and gamma,
        exact_lengths when not the CQT's defaults)."""
        return (f"sr={self.sr:g}, hop_length={self.hop_length}, n_bins={self.n_bins}, "
                f"bins_per_octave={self.bins_per_octave}, output={self.output!r}, "
                f"filter_taps={self.downsample_filter.numel()}"
                + (f", gamma={self.ker.gamma}" if self.ker.gamma != 0 else "")
                + (", exact_lengths=True" if self.ker.exact_lengths else ""))

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
        if self.pad_mode == "reflect" and x.shape[-1] == 0:
            raise ValueError("CQT: pad_mode='reflect' needs at least one sample, got an empty signal "
                             f"(shape {tuple(x.shape)}); use pad_mode='constant'")
        if self.compute_dtype is not None:
            x = x.to(self.compute_dtype)
        lead = x.shape[:-1]
        xr = x.reshape(math.prod(lead), x.shape[-1])
        matmuls, filt = self._operands(x.dtype, x.device)
        c = _octave_cqt(xr, matmuls, self.own_dmin, self.raised_dmin, self.ker, self.hop_length, self.pad_mode,
                        self.output, decimate, filt)
        return c.reshape(*lead, *c.shape[1:])


class VQT(CQT):
    """Variable-Q transform (librosa.vqt conventions): the CQT with bin k's bandwidth widened by gamma_k Hz.

    Bin k's filter is L_k = Q_k sr / (f_k + gamma_k / alpha_k) samples long (librosa's alpha_k and Q_k = filter_scale
    / alpha_k; see CQTKernels), so the low bins get shorter, wider filters than the CQT's. The lengths no longer
    halve from octave to octave, so every decimated octave has its own kernels at its rate (trainable=True:
    `kernels` for the top octave and `octave_kernels` for the others, all parameters).

    Args:
        gamma: (keyword) bandwidth offset in Hz, >= 0 (0: the CQT), or None (the default, librosa's): gamma_k =
            24.7 alpha_k / 0.108, bandwidths a constant fraction of the equivalent rectangular bandwidth
            (ERB(f) = 24.7 + 0.108 f Hz).
        the others: as CQT (exact_lengths=True included).

    Forward: x [T], [B, T] or [B, C, T], float32 or float64 -> [..., n_bins, 1 + T // hop_length], dtypes as CQT.

    Raises:
        TypeError: as CQT, and gamma neither None nor a number (gamma="erb", gamma=True).
        ValueError: as CQT, and gamma < 0 or not finite; the band edge check includes gamma_k / 2, as librosa's.

    Example:
        V = dense_conv.VQT(n_bins=84, bins_per_octave=12)(torch.randn(22050))  # [84, 44], complex64
    """

    def __init__(self, sr: float = 22050, hop_length: int = 512, fmin: Optional[float] = 32.70319566257483,
                 n_bins: int = 288, bins_per_octave: int = 36, filter_scale: float = 1.0, window="hann",
                 scale: bool = True, pad_mode: str = "constant", output: str = "complex",
                 trainable: bool = False, trainable_filter: bool = False,
                 downsample_filter: Optional[torch.Tensor] = None, *, gamma: Optional[float] = None,
                 tuning: float = 0.0, norm: Optional[float] = 1, dtype=None, exact_lengths: bool = False):
        super().__init__(sr, hop_length, fmin, n_bins, bins_per_octave, filter_scale, window, scale, pad_mode,
                         output, trainable, trainable_filter, downsample_filter, tuning=tuning, norm=norm,
                         dtype=dtype, gamma=gamma, exact_lengths=exact_lengths)
