"""The per_sample_conv2d CUDA kernels (csrc/cuda/per_sample_conv_kernels.cuh) on the CPU emulator
(tests/emu/harness.py) under three schedules, in float32 / float64 and (on a subset of the shapes)
float16 / bfloat16, against float64 autograd of the dense reference:
out[b, l] = sum_i dense_shift_add(weight[:, l, i], impulse[:, i]).

Shapes cover partial tiles in every dimension, tap chunks that do not divide the kernel, 1x1 kernels,
kernels larger than the image, L = 1, Ci = 1, L and Ci that are not multiples of any block's channel
count, B = 1, odd sizes and several grad_weight row slabs. Outputs are NaN-poisoned before each launch,
so an element a kernel forgets to write fails the comparison.
"""
import ctypes
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from emu import harness  # noqa: E402

from dense_conv import reference  # noqa: E402  (pure PyTorch: importable without the extension)

TOLERANCE = harness.TOLERANCE

# (B, L, Ci, Hi, Wi, Hr, Wr)
SHAPES = {
    "tiny_B1_L1_Ci1_odd": (1, 1, 1, 5, 7, 3, 3),
    "partial_tiles_multi_chunk": (2, 3, 2, 17, 65, 9, 17),  # 2 x 2 tiles, tap chunks 8+1 x 16+1
    "kernel_1x1": (1, 2, 3, 6, 5, 1, 1),
    "kernel_larger_than_image": (2, 2, 1, 4, 6, 7, 9),
    "L9_Ci10_uneven_chunks": (1, 9, 10, 5, 6, 2, 3),        # forward 5+4 outputs, grad_impulse 5+5
    "L5_Ci3_zero_channels": (2, 5, 3, 9, 20, 4, 3),         # grad_weight 8 x 4 blocks with empty channels
    "L2_Ci2": (1, 2, 2, 4, 9, 2, 2),
    "L1_Ci7": (1, 1, 7, 7, 33, 3, 5),
    "L7_Ci1": (1, 7, 1, 3, 5, 2, 1),
    "wide_three_column_tiles": (1, 1, 2, 3, 130, 2, 20),
    "tall_many_slabs_tap_chunks": (1, 1, 1, 300, 3, 18, 2),
    "wide_kernel_tap_column_chunks": (1, 2, 1, 5, 70, 2, 35),  # forward 16+16+3 columns, grad_weight 32+3
}

def make_inputs(shape, dtype, seed=0):
    """weight, impulse, grad_out, drawn in float64 and rounded to dtype (the kernels' own error only)."""
    B, L, Ci, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(B, L, Ci, Hr, Wr, generator=g, dtype=torch.float64)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64)
    grad_out = torch.randn(B, L, Hi, Wi, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype) for t in (weight, impulse, grad_out))


def per_sample_reference(weight, impulse):
    """out[b, l] = sum_i impulse[b, i] (*) weight[b, l, i]: the dense reference with the L outputs as its
    responses, one impulse channel at a time."""
    Ci = impulse.shape[1]
    return sum(reference.dense_shift_add(weight[:, :, i], impulse[:, i:i + 1]) for i in range(Ci))


def reference_per_sample(weight, impulse, grad_out):
    """float64 forward and both gradients (autograd through the reference)."""
    weight = weight.double().requires_grad_()
    impulse = impulse.double().requires_grad_()
    out = per_sample_reference(weight, impulse)
    grad_weight, grad_impulse = torch.autograd.grad(out, (weight, impulse), grad_out.double())
    return out.detach(), grad_impulse, grad_weight


def check(actual, expected, dtype):
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual.to(torch.float64), expected, rtol=0, atol=TOLERANCE[dtype] * scale)


# float16 / bfloat16: partial tiles and tap chunks, uneven channel chunks, several row slabs
HALF_SHAPES = ("tiny_B1_L1_Ci1_odd", "partial_tiles_multi_chunk", "L9_Ci10_uneven_chunks", "L5_Ci3_zero_channels",
               "tall_many_slabs_tap_chunks")


@pytest.mark.parametrize("shape,dtype", harness.shape_dtype_cases(SHAPES, HALF_SHAPES))
def test_per_sample_kernels(shape, dtype, schedule):
    check_per_sample_kernels(shape, dtype)


def check_per_sample_kernels(shape, dtype):
    """The forward, grad_impulse and grad_weight kernels in `dtype` against float64 autograd of the reference."""
    weight, impulse, grad_out = make_inputs(shape, dtype)
    out_ref, grad_impulse_ref, grad_weight_ref = reference_per_sample(weight, impulse, grad_out)
    Hr, Wr = weight.shape[3:]
    check(harness.per_sample_forward(weight, impulse), out_ref, dtype)
    check(harness.per_sample_grad_impulse(grad_out, weight), grad_impulse_ref, dtype)
    check(harness.per_sample_grad_weight(grad_out, impulse, Hr, Wr), grad_weight_ref, dtype)


def test_shapes_cover_the_grad_weight_plans():
    """The shapes above reach several row slabs and float's (LC, IC) channel blockings at 1, 2 and the maxima
    (LC 8, IC 4)."""
    plans = {name: harness.per_sample_grad_weight_plan(*shape) for name, shape in SHAPES.items()}
    assert plans["tall_many_slabs_tap_chunks"][0] == 19  # 300 rows in slabs of 16
    assert plans["L5_Ci3_zero_channels"][1:3] == (8, 4)
    assert plans["L2_Ci2"][1:3] == (2, 2)
    assert plans["L1_Ci7"][1:3] == (1, 4)
    assert plans["L7_Ci1"][1:3] == (8, 1)
    assert plans["tiny_B1_L1_Ci1_odd"][1:3] == (1, 1)


def test_grad_weight_is_deterministic_across_schedules():
    """Partial sums per row slab and a fixed-order reduction: bitwise the same in every block order."""
    shape = (1, 3, 2, 40, 37, 5, 4)
    assert harness.per_sample_grad_weight_plan(*shape)[0] > 1
    weight, impulse, grad_out = make_inputs(shape, torch.float32, seed=3)
    results = harness.under_each_schedule(lambda: harness.per_sample_grad_weight(grad_out, impulse, 5, 4))
    for other in results[1:]:
        assert torch.equal(results[0], other)


# Null pointers: the grid check must raise before any launch touches memory.
NULL = ctypes.c_void_p(0)


@pytest.mark.parametrize("B", [2**31, 2**32 + 1])
def test_per_sample_grid_too_large_is_a_clear_error(B):
    # 1x1 images and one channel: one block per sample for every kernel
    sizes = harness.per_sample_sizes(B, 1, 1, 1, 1, 1, 1)
    grid = rf"the launch needs a grid of {B} x 1 x 1 blocks, more than CUDA allows"
    with pytest.raises(RuntimeError, match=rf"per_sample_conv2d forward: {grid}"):
        harness.call("dc_emu_per_sample_forward", 0, NULL, NULL, NULL, sizes)
    with pytest.raises(RuntimeError, match=rf"per_sample_conv2d grad_impulse: {grid}"):
        harness.call("dc_emu_per_sample_grad_impulse", 0, NULL, NULL, NULL, sizes)
    # grad_weight: B row slabs of one row, one partial-sum block each
    with pytest.raises(RuntimeError, match=rf"per_sample_conv2d grad_weight: {grid}"):
        harness.call("dc_emu_per_sample_grad_weight", 0, NULL, NULL, NULL, NULL, sizes)
