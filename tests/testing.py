"""Shared test helpers: devices, dtypes, algorithms, shapes, tolerances, input makers.

Tests parametrise over products of these lists (devices x dtypes x algorithms x shapes), e.g.
@pytest.mark.parametrize("device,dtype,shape", product(DEVICES, DTYPES, DENSE_SHAPES)).
"""
import collections
import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import dense_conv
from dense_conv import reference

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]
CUDA_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
ALGORITHMS = ["direct", "fft", "auto"]
KINDS = ["dense", "sparse"]

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
needs_cuda_kernels = pytest.mark.skipif(not (torch.cuda.is_available() and dense_conv.cuda_kernels_compiled()),
                                        reason="needs a GPU and the extension's CUDA kernels")

# (B, Ci, Cr, Hi, Wi, Hr, Wr): odd sizes, 1x1 kernels, kernels larger than the image, partial tiles
# (the CUDA tiles are 16 x 64 and the tap chunks 8 x 16), B = 1, Ci or Cr = 1, Cr above one block's 8,
# row tails of every width of the CPU kernels. sparse_conv2d takes Cr = Ci.
SHAPES = [
    (2, 3, 4, 7, 9, 3, 2),
    (1, 1, 1, 1, 1, 1, 1),
    (1, 1, 1, 5, 5, 1, 1),
    (1, 2, 3, 4, 6, 9, 11),      # kernel larger than the image
    (3, 1, 1, 5, 17, 8, 20),     # kernel wider than the image
    (3, 1, 5, 17, 70, 10, 17),   # partial CUDA tiles and tap chunks in both directions
    (2, 4, 1, 13, 31, 5, 5),
    (1, 2, 9, 6, 5, 2, 3),       # Cr = 9: two response chunks on CUDA
    (2, 3, 5, 7, 33, 4, 5),
    (2, 2, 3, 33, 20, 37, 16),   # the user's kernel shape on a small image
    (2, 2, 3, 20, 70, 37, 16),
    (1, 2, 7, 9, 40, 9, 9),
    (2, 2, 8, 10, 31, 5, 5),
    (1, 3, 6, 12, 50, 2, 3),
    (1, 1, 2, 3, 200, 1, 1),
]

# |error| / max|expected| against the float64 reference
TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-12, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def product(*lists):
    """The cartesian product of parameter lists, as a list for pytest.mark.parametrize."""
    return list(itertools.product(*lists))


def shape_id(shape):
    return "x".join(map(str, shape))


def op(kind):
    return dense_conv.sparse_conv2d if kind == "sparse" else dense_conv.dense_conv2d


def reference_op(kind):
    return reference.sparse_shift_add if kind == "sparse" else reference.dense_shift_add


def make_inputs(shape, dtype=torch.float64, device="cpu", sparse=False, seed=0, requires_grad=False):
    """(response, impulse) for a (B, Ci, Cr, Hi, Wi, Hr, Wr) shape, drawn in float64 then cast."""
    B, Ci, Cr, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(seed)
    response = torch.randn(B, Ci if sparse else Cr, Hr, Wr, generator=g, dtype=torch.float64)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64)
    return (response.to(device=device, dtype=dtype).requires_grad_(requires_grad),
            impulse.to(device=device, dtype=dtype).requires_grad_(requires_grad))


def rel_err(actual, expected):
    """max|actual - expected| / max|expected| (0 for empty tensors)."""
    if expected.numel() == 0:
        return 0.0
    err = (actual.detach().double().cpu() - expected.detach().double().cpu()).abs().max()
    return (err / expected.detach().double().abs().max().clamp_min(1e-30)).item()


def assert_close_scaled(actual, expected, dtype, tol=None):
    """|actual - expected| <= tol * max|expected| (tol: TOLERANCE[dtype] unless given), finite, same shape."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.isfinite(actual).all(), "non-finite values in the result"
    tol = TOLERANCE[dtype] if tol is None else tol
    err = rel_err(actual, expected)
    assert err <= tol, f"relative error {err:.3e} > {tol:.1e} ({dtype})"


class CountOps(TorchDispatchMode):
    """Counts the ATen ops dispatched inside the `with` (op name -> calls): on a GPU each op that is not a view
    is at least one kernel launch, so these counts are the launches of a call, measurable on the CPU."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))
