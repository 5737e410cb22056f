"""The decimation filter of octave_downsample (dense_conv.functional): a zero-phase half-band FIR.

octave_downsample low-passes and decimates by 2 in one pass, for octave-by-octave CQTs. With a
symmetric filter (the half-band design here) it is a zero-phase convolution: output sample m sits
exactly on input sample 2m, so octaves never drift against each other.
"""
import functools
import math
from typing import Optional, Union

import numpy as np
import torch

__all__ = ["halfband_filter", "halfband_response", "DEFAULT_PASSBAND", "DEFAULT_ATTENUATION_DB"]

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

    Args:
        passband: in (0, 0.5), fraction of the input Nyquist.
        attenuation_db: stopband attenuation in dB.
        numtaps: odd, >= 3; None picks the Kaiser length for attenuation_db.
        dtype, device: of the result (computed in float64, then cast).

    Returns:
        h [numtaps], symmetric, zero at every even non-zero offset from the centre tap, sum 1.

    Raises:
        ValueError: passband outside (0, 0.5), or numtaps even or < 3.

    Example:
        h = dense_conv.halfband_filter()  # [83], float32
    """
    h = _halfband_taps(float(passband), float(attenuation_db), numtaps)
    return torch.tensor(h, dtype=dtype, device=device)


def halfband_response(h: Union[torch.Tensor, np.ndarray], passband: float = DEFAULT_PASSBAND, n: int = 1 << 16):
    """(max |passband ripple| in dB up to `passband`, max stopband gain in dB from 1 - passband).

    h: a zero-phase FIR [N], N odd (tensor on any device, or numpy array; read in float64). passband:
    fraction of Nyquist. n: frequency samples from 0 to Nyquist. Returns two Python floats.

    Example:
        halfband_response(halfband_filter())  # (about 8.4e-05, about -100.0)
    """
    h = np.asarray(h.detach().cpu().double() if isinstance(h, torch.Tensor) else h, dtype=np.float64)
    m = (len(h) - 1) // 2
    w = np.linspace(0, np.pi, n)
    k = np.arange(-m, m + 1)
    resp = np.cos(np.outer(w, k)) @ h  # zero-phase: the response is real
    f = w / np.pi
    ripple = np.max(np.abs(20 * np.log10(np.abs(resp[f <= passband]))))
    stop = 20 * np.log10(np.max(np.abs(resp[f >= 1 - passband])))
    return float(ripple), float(stop)
