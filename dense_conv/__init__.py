"""dense_conv: per-sample dense/sparse 2-D convolution (and a trainable CQT) as PyTorch custom ops.

    out = dense_conv2d(response, impulse)   # [B, Ci*Cr, Hi, Wi], channel i*Cr + r
    out = sparse_conv2d(response, impulse)  # [B, C, Hi, Wi], channel c with channel c
"""
import torch  # noqa: F401  (loads libtorch, which _C links against)

from . import _C  # noqa: F401  (loads the compiled kernels and registers the torch.ops.dense_conv ops)
from ._ops import dense_conv2d, sparse_conv2d, cuda_kernels_compiled
from .modules import DenseMix, FactoredMix
from .octave import octave_downsample, halfband_filter
from .cqt import CQT, cqt_definition, cqt_octave_reference

__all__ = ["dense_conv2d", "sparse_conv2d", "cuda_kernels_compiled", "DenseMix", "FactoredMix",
           "octave_downsample", "halfband_filter", "CQT", "cqt_definition", "cqt_octave_reference"]
