"""Pure-PyTorch definition of octave_downsample: zero padding, then conv1d with stride 2, level by level."""
import torch

from .._checks import check_octave_levels

__all__ = ["octave_downsample_reference"]


def octave_downsample_reference(x: torch.Tensor, filter: torch.Tensor, levels: int = 1):
    """Same semantics and outputs as dense_conv.octave_downsample (differentiable to any order):

        y[..., m] = sum_{n=0}^{N-1} filter[n] * x[..., 2m + n - (N-1)/2]      (N odd, zeros outside x)

    levels=1 returns a tensor [..., ceil(T/2)], levels=L a list of the L successive octaves.
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
