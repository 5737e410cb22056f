"""Pure-PyTorch references of every op and of the CQT (float64 definitions for the tests and benchmarks).

They need only torch (numpy and scipy for the CQT), not the compiled extension.
"""
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _conv_all
from .cqt import cqt_definition, cqt_octave_reference
from .octave import octave_downsample_reference

__all__ = [*_conv_all, "octave_downsample_reference", "cqt_definition", "cqt_octave_reference"]
