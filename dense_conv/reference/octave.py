"""Pure-PyTorch definition of octave_downsample: zero padding, then conv1d with stride 2, level by level."""
import torch

from .._checks import check_octave_levels

__all__ = ["octave_downsample_reference"]


def octave_downsample_reference(x: torch.Tensor, filter: torch.Tensor, levels: int = 1):
    """Same semantics and outputs as dense_conv.octave_downsample (differentiable to any order):

        y[..., m] = sum_{n=0}^{N-1} filter[n] * x[..., 2m + n - (N-1)/2]      (N odd, zeros outside x)

    x [..., T], floating point (any dtype and device conv1d takes); filter [N], N odd, cast to x's
    dtype. levels=1 returns a tensor [..., ceil(T/2)], levels=L (an int in [1, 32]) a list of the L
    successive octaves [..., ceil(T/2)], [..., ceil(T/4)], ...

    Raises:
        TypeError: x is not floating point, or levels is not an int.
        ValueError: levels outside [1, 32], x is a scalar, or filter is not 1-D with an odd number of taps.

    Example:
        y = octave_downsample_reference(torch.randn(2, 1000), dense_conv.halfband_filter())  # [2, 500]
    """
    levels = check_octave_levels(levels)
    if not x.is_floating_point():
        raise TypeError(f"octave_downsample_reference: x must be a floating-point tensor, got {x.dtype}")
    if x.dim() < 1 or filter.dim() != 1 or filter.numel() % 2 == 0:
        raise ValueError(f"octave_downsample_reference: x must be [..., T] and filter 1-D with an odd number of taps, "
                         f"got shapes {tuple(x.shape)} and {tuple(filter.shape)}")
    lead = x.shape[:-1]
    m = (filter.numel() - 1) // 2
    w = filter.to(x.dtype).view(1, 1, -1)
    cur = x.reshape(-1, 1, x.shape[-1])
    outs = []
    for _ in range(levels):
        cur = torch.nn.functional.conv1d(torch.nn.functional.pad(cur, (m, m)), w, stride=2)
        outs.append(cur.reshape(*lead, cur.shape[-1]))
    return outs[0] if levels == 1 else outs
