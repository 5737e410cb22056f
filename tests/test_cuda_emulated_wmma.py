"""The tensor-core forward of dense_conv2d (csrc/cuda/dense_conv_wmma_kernels.cuh) under the CPU emulator,
whose WMMA API is tests/emu/wmma_emu.h: float16 / bfloat16 always, float32 in TF32 when allowed.

Error bounds, per output element, from S = sum_{p,q} |impulse * response| (the float64 reference on absolute
values) and n = Hr * Wr products (the reduction length):
  * float16 / bfloat16 inputs are the operands as they are, their products exact in float32; the float32
    accumulation of n terms errs by at most n * 2**-23 * S (one float32 ulp per addition, which also covers
    tensor cores that truncate instead of rounding), then the output's rounding to the dtype by u * |out|
    (u = 2**-11 float16, 2**-8 bfloat16).
  * float32 in TF32: each operand rounded to 10 mantissa bits (relative error <= 2**-11 each, so <= 2**-10 +
    2**-22 per product), the same accumulation bound, and the float32 output rounding 2**-24 * |out|.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from dense_conv import reference  # noqa: E402  (pure PyTorch)
from emu import harness  # noqa: E402

UNIT_ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24}
OPERAND_ERROR = {torch.float16: 0.0, torch.bfloat16: 0.0, torch.float32: 2.0**-10 + 2.0**-21}  # per product
DTYPE_ID = {torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "tf32"}

# (B, Ci, Cr, Hi, Wi, Hr, Wr): a block is 128 (TF32: 64) columns x Cb responses (Cr split evenly, at most 16) x
# min(16, 64 // Cb) rows; taps staged 256 // Cb rows x 16 (TF32: 8) columns at a time, window rows 8 at a time.
SHAPES = {
    "one_pixel_B1": (1, 1, 1, 1, 1, 1, 1),
    "odd_two_q_chunks": (1, 2, 5, 9, 37, 5, 19),
    "kernel_1x1": (2, 1, 3, 7, 33, 1, 1),
    "kernel_larger_than_image": (1, 1, 2, 5, 11, 9, 20),
    "Cr9_one_chunk_7_rows": (1, 1, 9, 4, 20, 3, 5),
    "Cr17_two_response_chunks": (1, 1, 17, 9, 20, 3, 5),
    "Cr5_three_row_tiles": (1, 1, 5, 30, 20, 13, 4),
    "tall_taps_two_p_chunks": (1, 1, 16, 60, 10, 55, 3),
    "wide_three_x_blocks": (1, 1, 2, 3, 300, 2, 3),
}


def inputs(shape, dtype, seed=0):
    B, Ci, Cr, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(seed)
    response = torch.randn(B, Cr, Hr, Wr, generator=g, dtype=torch.float64).to(dtype)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    return response, impulse


def error_bound(response, impulse, dtype):
    """Per-element bound of the module docstring, and the float64 reference."""
    r64, i64 = response.double(), impulse.double()
    expected = reference.dense_shift_add(r64, i64)
    S = reference.dense_shift_add(r64.abs(), i64.abs())
    n = response.shape[2] * response.shape[3]
    bound = (OPERAND_ERROR[dtype] + n * 2.0**-23) * S + UNIT_ROUNDOFF[dtype] * expected.abs()
    return expected, bound + 1e-30


def forward(response, impulse):
    return harness.dense_forward(response, impulse, allow_tf32=response.dtype == torch.float32)


def check_wmma_forward(shape, dtype):
    response, impulse = inputs(shape, dtype)
    expected, bound = error_bound(response, impulse, dtype)
    err = (forward(response, impulse).double() - expected).abs()
    assert not err.isnan().any(), "output not written (poison) or NaN"
    worst = (err / bound).max().item()
    assert worst <= 1.0, f"{shape} {dtype}: error {worst:.3g} x the bound"


@pytest.mark.parametrize("dtype", list(DTYPE_ID), ids=DTYPE_ID.get)
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_wmma_forward_against_float64(shape, dtype, schedule):
    check_wmma_forward(shape, dtype)


def test_tf32_only_when_allowed():
    """float32 without TF32 runs the direct kernel (float32 error); with it, the error shows TF32 operands."""
    response, impulse = inputs(SHAPES["odd_two_q_chunks"], torch.float32, seed=3)
    expected = reference.dense_shift_add(response.double(), impulse.double())
    scale = expected.abs().max().item()
    exact = (harness.dense_forward(response, impulse).double() - expected).abs().max().item()
    tf32 = (harness.dense_forward(response, impulse, allow_tf32=True).double() - expected).abs().max().item()
    assert exact < 2e-6 * scale < tf32 < 2.0**-8 * scale


def test_float_to_tf32_rounds_to_nearest_ties_away():
    """The emulated __float_to_tf32 (cvt.rna.tf32.f32): 10 mantissa bits, to nearest, ties away from zero."""
    ulp = 2.0**-10
    values = [1.0, 1.0 + ulp / 2, 1.0 + ulp / 2 - 2.0**-23, 1.0 + 1.5 * ulp, -(1.0 + ulp / 2), float("inf")]
    expected = [1.0, 1.0 + ulp, 1.0, 1.0 + 2 * ulp, -(1.0 + ulp), float("inf")]
    assert harness.round_to_tf32(torch.tensor(values)).tolist() == expected


def wmma_product(a, b, bug):
    """out[16][16] = a[16][8] @ b[8][16] through tests/emu/planted_wmma_bugs.cuh (32-byte aligned copies)."""
    def aligned(t):
        storage = torch.zeros(t.numel() + 8)
        offset = (-storage.data_ptr() // 4) % 8
        view = storage[offset:offset + t.numel()].view(t.shape)
        view.copy_(t)
        return view
    a, b, out = aligned(a), aligned(b), aligned(torch.full((16, 16), float("nan")))
    harness.call("dc_emu_wmma_product", a, b, out, bug)
    return out.clone()


def test_planted_wmma_product_correct_variant():
    g = torch.Generator().manual_seed(0)
    a = harness.round_to_tf32(torch.randn(16, 8, generator=g))
    b = harness.round_to_tf32(torch.randn(8, 16, generator=g))
    torch.testing.assert_close(wmma_product(a, b, bug=0).double(), a.double() @ b.double(), rtol=0, atol=1e-5)


def test_planted_divergent_mma_sync_is_reported():
    a, b = torch.zeros(16, 8), torch.zeros(8, 16)
    with pytest.raises(RuntimeError, match=r"mma_sync at .*planted_wmma_bugs.cuh:\d+.*different WMMA call|"
                                           r"store_matrix_sync at .*planted_wmma_bugs.cuh:\d+.*different WMMA call"):
        wmma_product(a, b, bug=1)


def test_planted_wmma_with_exited_lanes_is_reported():
    a, b = torch.zeros(16, 8), torch.zeros(8, 16)
    with pytest.raises(RuntimeError, match=r"load_matrix_sync at .*planted_wmma_bugs.cuh:\d+ reached by lanes mask "
                                           r"0x0000ffff only.*all 32 lanes"):
        wmma_product(a, b, bug=2)


def test_unrounded_tf32_operand_is_reported():
    a, b = torch.full((16, 8), 1.0 + 2.0**-20), torch.zeros(8, 16)
    with pytest.raises(RuntimeError, match=r"tf32 operand .* not rounded with __float_to_tf32"):
        wmma_product(a, b, bug=0)
