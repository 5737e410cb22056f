"""The compiled extension dense_conv._C, loaded when present.

The references (dense_conv.reference), the filter design and the shape helpers are pure PyTorch and
work without it; the ops raise an ImportError that says how to build it.
"""
import importlib

import torch

try:
    # registers the torch.ops.dense_conv kernels (schemas in csrc/ops.cpp)
    importlib.import_module(f"{__package__}._C")
    LOADED = True
    _load_error = None
except ImportError as error:
    LOADED = False
    _load_error = error

BUILD_HINT = ("build it in place with `python setup.py build_ext --inplace` (or `pip install --no-build-isolation "
              "-e .`) in the repository root")


def ops():
    """torch.ops.dense_conv, or an ImportError when the compiled extension is missing."""
    if not LOADED:
        raise ImportError(f"dense_conv: the compiled extension dense_conv._C is not available ({_load_error}); "
                          f"{BUILD_HINT}") from _load_error
    return torch.ops.dense_conv
