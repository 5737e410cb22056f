"""Sizes shared with the C++ side: the Python mirror of csrc/shapes.h (pure Python, no extension).

Used by the argument checks and fake kernels, the `auto` cost model, the references and the tests; the
numbers must stay equal to the header's (the tests compare the fake kernels' shapes with the compiled ops').
"""
from typing import List

# octave_downsample: at most this many levels in one call (csrc/shapes.h kMaxOctaveLevels).
MAX_OCTAVE_LEVELS = 32


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def conv_output_shape(response_shape, impulse_shape, sparse: bool):
    """[B, Ci*Cr (Ci if sparse), Hi, Wi]."""
    B, Ci, Hi, Wi = impulse_shape
    return (B, Ci if sparse else Ci * response_shape[1], Hi, Wi)


def per_sample_output_shape(weight_shape, impulse_shape):
    """per_sample_conv2d: weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, L, Hi, Wi]."""
    B, _, Hi, Wi = impulse_shape
    return (B, weight_shape[1], Hi, Wi)


def next_smooth_size(n: int, even: bool = False) -> int:
    """Smallest m >= n with only 2, 3, 5 as prime factors (even if asked): the FFT sizes (csrc/shapes.h next_smooth)."""
    m = max(1, n)
    while True:
        if not (even and m % 2 and m > 1):
            k = m
            for f in (2, 3, 5):
                while k % f == 0:
                    k //= f
            if k == 1:
                return m
        m += 1


def fft_size(Hi: int, Wi: int, Hr: int, Wr: int):
    """Transform size (H, W) of the FFT algorithm (csrc/shapes.h fft_plan)."""
    Hq, Wq = min(Hr, Hi), min(Wr, Wi)
    return next_smooth_size(Hi + Hq - 1), next_smooth_size(Wi + Wq - 1, even=True)


def octave_level_lengths(T: int, levels: int) -> List[int]:
    """Lengths of levels 1..levels: ceil(T / 2), ceil(T / 4), ... (csrc/shapes.h octave_levels)."""
    out, n = [], T
    for _ in range(levels):
        n = (n + 1) // 2
        out.append(n)
    return out


def octave_packed_length(T: int, levels: int) -> int:
    """Length of the packed output of octave_downsample(levels=levels): the sum of the level lengths."""
    total, n = 0, T
    for _ in range(levels):  # written out (not sum()) so that it also works on SymInts
        n = (n + 1) // 2
        total = total + n
    return total
