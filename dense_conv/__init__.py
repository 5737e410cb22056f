"""dense_conv: per-sample dense/sparse 2-D convolution (and a trainable CQT) as PyTorch custom ops.

    out = dense_conv2d(response, impulse)   # [B, Ci*Cr, Hi, Wi], channel i*Cr + r
    out = sparse_conv2d(response, impulse)  # [B, C, Hi, Wi], channel c with channel c
    out = per_sample_conv2d(weight, impulse)  # [B, L, Hi, Wi], weight [B, L, Ci, Hr, Wr] per sample
    out = dense_mix_conv2d(response, impulse, mix)  # [B, L, Hi, Wi], dense_conv2d + 1x1 mix [L, Ci, Cr]

Modules: functional (the ops), layers (DenseMix, FactoredMix), audio (half-band filter, CQT, VQT, inverse CQT),
reference (pure-PyTorch definitions, usable without the compiled extension).

Processes forked after torch has started its CPU thread pool (any multi-threaded op, these included)
must call torch.set_num_threads(1) in the child before using the ops, as for plain torch ops: the
pool's threads do not survive fork(). Process pools that spawn instead of fork (multiprocessing's
"spawn" / "forkserver", DataLoader with multiprocessing_context="spawn") need nothing.
"""
import torch  # noqa: F401  (loads libtorch, which _C links against)

from . import _extension

if _extension.LOADED:
    from . import _autograd, _fake, _mix_fft  # noqa: F401  (register the ops' autograd and fake kernels)

from .audio import CQT, ICQT, VQT, halfband_filter, icqt
from .functional import (cuda_kernels_compiled, dense_conv2d, dense_mix_conv2d, octave_downsample, per_sample_conv2d,
                         sparse_conv2d)
from .layers import DenseMix, FactoredMix
from .reference import cqt_definition, cqt_octave_reference

__all__ = ["dense_conv2d", "sparse_conv2d", "per_sample_conv2d", "dense_mix_conv2d", "cuda_kernels_compiled",
           "DenseMix", "FactoredMix", "octave_downsample", "halfband_filter", "CQT", "VQT", "ICQT", "icqt",
           "cqt_definition", "cqt_octave_reference"]
