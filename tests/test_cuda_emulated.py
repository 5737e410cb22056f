"""Every CUDA kernel of the project, run on the CPU by the emulator (tests/emu/harness.py) under several
schedules, against the float64 pure-PyTorch references (dense_conv/reference/), in every dtype its op's
dispatch accepts (float16 / bfloat16 as c10::Half / c10::BFloat16, on a subset of the shapes), with the
per-dtype error bounds of harness.TOLERANCE.

Shapes cover partial tiles in every dimension, tap chunks that do not divide the kernel, 1x1 kernels,
kernels larger than the image, Cr = 1, Cr > responses per block, B = 1, odd sizes, several
grad_response row slabs and tap chunks. Outputs are NaN-poisoned before each launch, so an element a
kernel forgets to write fails the comparison.
"""
import ctypes
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from emu import fft_host, harness  # noqa: E402

from dense_conv import reference  # noqa: E402  (pure PyTorch: importable without the extension)
from dense_conv._shapes import fft_size, octave_packed_length  # noqa: E402

TOLERANCE = harness.TOLERANCE
FLOAT_DTYPES, HALF_DTYPES, DTYPE_ID = [torch.float32, torch.float64], list(harness.HALF_DTYPES), harness.DTYPE_ID

# (B, Ci, Cr, Hi, Wi, Hr, Wr)
SHAPES = {
    "tiny_B1_Cr1_odd": (1, 1, 1, 5, 7, 3, 3),
    "partial_tiles_multi_chunk": (2, 2, 3, 17, 65, 9, 17),
    "kernel_1x1": (1, 3, 2, 6, 5, 1, 1),
    "kernel_larger_than_image": (2, 1, 2, 4, 6, 7, 9),
    "Cr9_two_response_chunks": (1, 2, 9, 5, 6, 2, 3),   # forward blocks of 5 + 4 responses
    "Cr5_users_response_count": (2, 2, 5, 9, 20, 4, 3),
    "Cr7": (1, 1, 7, 4, 9, 2, 2),
    "Cr8_one_full_block": (1, 1, 8, 3, 5, 3, 1),
    "Cr4": (1, 2, 4, 6, 9, 3, 4),                       # forward blocks of 4 responses
    "Cr6": (1, 1, 6, 5, 7, 2, 3),                       # ... of 6
    "wide_three_column_tiles": (1, 1, 2, 3, 130, 2, 20),
    # forward tiles of 8 columns per thread (float Cr 3..8): 3 column tiles, rows past the image in the last
    # row tile, partial tap chunks (3 rows, 5 columns); double: 5 column tiles of 2 + 2 + 1 responses
    "wide_Cr5_column_tiles": (1, 1, 5, 19, 260, 11, 21),
    # forward tiles of 16 columns per thread (float Cr 1..2): 2 column tiles, warps wholly past the image
    "wide_Cr1_column_tiles": (1, 1, 1, 40, 200, 5, 19),
    "tall_many_slabs_tap_chunks": (1, 1, 1, 300, 3, 18, 2),
    # the user's kernel (37x16): grad_impulse bands of 16 + 16 + 5 tap rows, 2 row tiles (the second's warps cut
    # by the anti-causal bound), vector staging (Wi % 4 == 0), a last column tile of 8 (float) tap columns
    "users_kernel_three_tap_bands": (1, 2, 2, 45, 136, 37, 16),
}

def make_inputs(shape, dtype, seed=0):
    B, Ci, Cr, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(seed)
    response = torch.randn(B, Cr, Hr, Wr, generator=g, dtype=torch.float64)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64)
    grad_out = torch.randn(B, Ci * Cr, Hi, Wi, generator=g, dtype=torch.float64)
    return response, impulse, grad_out


def reference_dense(response, impulse, grad_out):
    """float64 forward and both gradients (autograd through the definition)."""
    response = response.clone().requires_grad_()
    impulse = impulse.clone().requires_grad_()
    out = reference.dense_shift_add(response, impulse)
    grad_response, grad_impulse = torch.autograd.grad(out, (response, impulse), grad_out)
    return out.detach(), grad_impulse, grad_response


def check(actual, expected, dtype):
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual.to(torch.float64), expected, rtol=0, atol=TOLERANCE[dtype] * scale)


# float16 / bfloat16: partial tiles and tap chunks, Cr = 1, and the response blockings of the user's Cr = 5
HALF_SHAPES = ("tiny_B1_Cr1_odd", "partial_tiles_multi_chunk", "kernel_larger_than_image", "Cr5_users_response_count",
               "tall_many_slabs_tap_chunks", "users_kernel_three_tap_bands")


@pytest.mark.parametrize("shape,dtype", harness.shape_dtype_cases(SHAPES, HALF_SHAPES))
def test_dense_kernels(shape, dtype, schedule):
    check_dense_kernels(shape, dtype)


def check_dense_kernels(shape, dtype):
    """The forward, grad_impulse and grad_response kernels in `dtype` against the float64 reference."""
    response, impulse, grad_out = make_inputs(shape, dtype)
    # Inputs rounded to dtype first, so the only float32 error is the kernels' own rounding.
    response, impulse, grad_out = (t.to(dtype) for t in (response, impulse, grad_out))
    out_ref, grad_impulse_ref, grad_response_ref = reference_dense(*(t.double() for t in (response, impulse, grad_out)))
    Hr, Wr = response.shape[2:]
    check(harness.dense_forward(response, impulse), out_ref, dtype)
    check(harness.dense_grad_impulse(grad_out, response), grad_impulse_ref, dtype)
    check(harness.dense_grad_response(grad_out, impulse, Hr, Wr), grad_response_ref, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + HALF_DTYPES, ids=DTYPE_ID.get)
def test_dense_grad_impulse_bitwise_across_schedules_and_staging_paths(dtype):
    # grad_out rows 16-byte aligned: the window is staged with vector loads; grad_out one element off: with scalar
    # loads. The same values are staged and summed in the same order, so every result is bitwise the same.
    response, _, grad_out = (t.to(dtype) for t in make_inputs(SHAPES["users_kernel_three_tap_bands"], dtype))
    shifted = torch.empty(grad_out.numel() + 1, dtype=dtype)[1:].view_as(grad_out).copy_(grad_out)
    assert grad_out.data_ptr() % 16 == 0 and shifted.data_ptr() % 16 != 0
    results = [r for pair in harness.under_each_schedule(lambda: (harness.dense_grad_impulse(grad_out, response),
                                                                  harness.dense_grad_impulse(shifted, response)))
               for r in pair]
    for other in results[1:]:
        assert torch.equal(other, results[0])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + HALF_DTYPES, ids=DTYPE_ID.get)
def test_dense_grad_response_bitwise_across_schedules(dtype):
    # Each thread sums its runs in a fixed order (skipping the rows its warp's taps cannot meet), the lanes and
    # the slabs are added in fixed orders: every schedule gives bitwise the same result.
    _, impulse, grad_out = (t.to(dtype) for t in make_inputs(SHAPES["users_kernel_three_tap_bands"], dtype))
    results = harness.under_each_schedule(lambda: harness.dense_grad_response(grad_out, impulse, 37, 16))
    for other in results[1:]:
        assert torch.equal(other, results[0])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + HALF_DTYPES, ids=DTYPE_ID.get)
def test_sparse_through_dense_kernels(dtype, schedule):
    # sparse_conv2d runs the dense kernels on [B*C, 1, H, W] views (csrc/sparse_conv.cpp).
    B, C, Hi, Wi, Hr, Wr = 2, 3, 9, 70, 4, 18
    g = torch.Generator().manual_seed(1)
    response = torch.randn(B, C, Hr, Wr, generator=g, dtype=torch.float64).to(dtype)
    impulse = torch.randn(B, C, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    grad_out = torch.randn(B, C, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    r64, i64 = response.double().requires_grad_(), impulse.double().requires_grad_()
    out_ref = reference.sparse_shift_add(r64, i64)
    grad_response_ref, grad_impulse_ref = torch.autograd.grad(out_ref, (r64, i64), grad_out.double())

    def as_samples(t):
        return t.reshape(B * C, 1, *t.shape[2:])

    out = harness.dense_forward(as_samples(response), as_samples(impulse)).reshape(B, C, Hi, Wi)
    grad_impulse = harness.dense_grad_impulse(as_samples(grad_out), as_samples(response)).reshape(B, C, Hi, Wi)
    grad_response = harness.dense_grad_response(as_samples(grad_out), as_samples(impulse), Hr, Wr)
    check(out, out_ref.detach(), dtype)
    check(grad_impulse, grad_impulse_ref, dtype)
    check(grad_response.reshape(B, C, Hr, Wr), grad_response_ref, dtype)


# ---- FFT products (csrc/cuda/fft_conv_kernels.cuh) ----

COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}

# (nb, Ci, Cr, K): K odd and not a multiple of the block; Ci = 1, Cr = 1; Cr above the backward's
# responses per thread (8 float, 4 double: several passes over i); one bin.
SPECTRA = {
    "one_bin": (1, 1, 1, 1),
    "users_channels_odd_K": (3, 4, 5, 301),
    "Cr1_two_blocks": (2, 4, 1, 513),
    "Ci1": (2, 1, 3, 257),
    "Cr9_passes": (1, 3, 9, 37),
    "Cr17_three_passes": (2, 2, 17, 45),
}


def make_spectra(shape, dtype, seed=0):
    nb, Ci, Cr, K = shape
    g = torch.Generator().manual_seed(seed)

    def spectrum(*size):
        return torch.randn(*size, generator=g, dtype=torch.complex128)

    return spectrum(nb, Ci, K), spectrum(nb, Cr, K), spectrum(nb, Ci * Cr, K)


def check_complex(actual, expected, dtype):
    check(torch.view_as_real(actual.to(torch.complex128)), torch.view_as_real(expected), dtype)


# float and double only: the FFT ops transform float16 / bfloat16 inputs in float32 (test_fft_conv_pipeline)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_ID.get)
@pytest.mark.parametrize("shape", SPECTRA.values(), ids=SPECTRA.keys())
def test_fft_product_kernels(shape, dtype, schedule):
    check_fft_kernels(shape, dtype)


def check_fft_kernels(shape, dtype):
    """The forward product and the backward correlation kernels in `dtype` against complex128 products."""
    A, R, G = (t.to(COMPLEX[dtype]) for t in make_spectra(shape, dtype))
    A64, R64, G64 = A.to(torch.complex128), R.to(torch.complex128), G.to(torch.complex128)
    nb, Ci, Cr, K = shape
    P_ref = (A64[:, :, None, :] * R64[:, None, :, :]).reshape(nb, Ci * Cr, K)
    G4 = G64.view(nb, Ci, Cr, K)
    GI_ref = (G4 * R64[:, None].conj()).sum(2)
    GR_ref = (G4 * A64[:, :, None].conj()).sum(1) * 0.25
    check_complex(harness.fft_product(A, R), P_ref, dtype)
    GI, GR = harness.fft_correlate(G, A, R, gr_scale=0.25)
    check_complex(GI, GI_ref, dtype)
    check_complex(GR, GR_ref, dtype)


def test_fft_correlate_is_deterministic_across_schedules():
    A, R, G = (t.to(torch.complex64) for t in make_spectra((2, 3, 11, 300), torch.float32, seed=3))
    results = harness.under_each_schedule(lambda: harness.fft_correlate(G, A, R) + (harness.fft_product(A, R),))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(torch.view_as_real(a), torch.view_as_real(b))


def emulated_fft_conv(response, impulse, grad_out, keep=False, nb_max=None):
    """The pipeline of csrc/cuda/fft_conv_cuda.cu, step by step (fft_forward, then fft_backward), with the host
    transforms of tests/emu/fft_host.py (torch.fft on the CPU) around the emulated kernels: output, grad_impulse,
    grad_response and the kept spectra (None unless `keep`: dense_conv2d_fft_keep_spectra, then
    dense_conv2d_fft_backward_spectra taking them). nb_max: samples per chunk (the whole batch by default). As
    there, float16 and bfloat16 inputs are transformed in float32 and the results cast back."""
    B, Ci, Hi, Wi = impulse.shape
    Cr, Hr, Wr = response.shape[1:]
    Hq, Wq = min(Hr, Hi), min(Wr, Wi)
    H, W = fft_size(Hi, Wi, Hr, Wr)
    Wf, K = W // 2 + 1, H * (W // 2 + 1)
    nb_max = nb_max or B
    resp = response[:, :, :Hq, :Wq]
    # fft_forward
    out = torch.empty(B, Ci * Cr, Hi, Wi, dtype=impulse.dtype)
    kept = fft_host.empty_kept_spectra(B, Ci, Cr, H, W, impulse.dtype) if keep else None
    for b0 in range(0, B, nb_max):
        nb = min(nb_max, B - b0)
        A = fft_host.forward_spectra(impulse[b0:b0 + nb], H, W, scaled=False)
        R = fft_host.forward_spectra(resp[b0:b0 + nb], H, W, scaled=True)
        if keep:
            kept[0][b0:b0 + nb], kept[1][b0:b0 + nb] = A, R
        P = harness.fft_product(A.reshape(nb, Ci, K), R.reshape(nb, Cr, K)).view(nb, Ci * Cr, H, Wf)
        out[b0:b0 + nb] = fft_host.inverse_rows(P, Hi, W)[..., :Wi]
    # fft_backward
    grad_response = torch.zeros_like(response)
    grad_impulse = torch.empty_like(impulse)
    for b0 in range(0, B, nb_max):
        nb = min(nb_max, B - b0)
        if keep:
            A, R = kept[0][b0:b0 + nb], kept[1][b0:b0 + nb]
        else:
            A = fft_host.forward_spectra(impulse[b0:b0 + nb], H, W, scaled=False)
            R = fft_host.forward_spectra(resp[b0:b0 + nb], H, W, scaled=True)
        G = fft_host.forward_spectra(grad_out[b0:b0 + nb], H, W, scaled=False)
        GI, GR = harness.fft_correlate(G.reshape(nb, Ci * Cr, K), A.reshape(nb, Ci, K), R.reshape(nb, Cr, K),
                                       gr_scale=1.0 / (H * W))
        grad_impulse[b0:b0 + nb] = fft_host.inverse_rows(GI.view(nb, Ci, H, Wf), Hi, W)[..., :Wi]
        grad_response[b0:b0 + nb, :, :Hq, :Wq] = fft_host.inverse_rows(GR.view(nb, Cr, H, Wf), Hq, W)[..., :Wq]
    return out, grad_impulse, grad_response, kept


# (B, Ci, Cr, Hi, Wi, Hr, Wr) and whether grad_response's inverse is pruned (2 Hq < H: see fft_cuda_common.h)
FFT_PIPELINE_SHAPES = {
    "partial_pruned": ((2, 2, 3, 17, 65, 9, 17), True),
    "kernel_larger": ((2, 1, 2, 4, 6, 7, 9), False),
    "Cr1_pruned": ((1, 3, 1, 9, 20, 4, 3), True),
    "Cr9_pruned": ((1, 2, 9, 5, 6, 2, 3), True),
    "Hq_equals_Hi": ((1, 2, 2, 6, 5, 6, 2), False),
    "users_kernel_pruned": ((2, 2, 3, 60, 40, 8, 16), True),
}


@pytest.mark.parametrize("keep", [False, True], ids=["recomputed", "kept"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + HALF_DTYPES, ids=DTYPE_ID.get)
@pytest.mark.parametrize("shape,pruned", FFT_PIPELINE_SHAPES.values(), ids=FFT_PIPELINE_SHAPES.keys())
def test_fft_conv_pipeline(shape, pruned, dtype, keep):
    B, Ci, Cr, Hi, Wi, Hr, Wr = shape
    H = fft_size(Hi, Wi, Hr, Wr)[0]
    assert (2 * min(Hr, Hi) < H) == pruned and 2 * Hi >= H  # the forward's and grad_impulse's are never pruned
    response, impulse, grad_out = (t.to(dtype) for t in make_inputs(shape, dtype))
    refs = reference_dense(*(t.double() for t in (response, impulse, grad_out)))
    actual = emulated_fft_conv(response, impulse, grad_out, keep=keep, nb_max=1 if keep else None)
    for x, expected in zip(actual[:3], refs):
        # transforms of a few hundred points: a few float32 roundings more than the direct kernels, plus the
        # rounding of the result to a 16-bit dtype
        scale = max(1.0, expected.abs().max().item())
        tol = (1e-12 if dtype == torch.float64 else 1e-5) + harness.UNIT_ROUNDOFF.get(dtype, 0.0)
        torch.testing.assert_close(x.double(), expected, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_ID.get)
def test_fft_conv_pipeline_kept_spectra_are_the_cpu_ops(dtype):
    """Kept spectra: the same gradients as recomputed ones, bitwise, and the CPU op's layout and scaling (so the
    fake kernels and the autograd glue serve both backends)."""
    shape = FFT_PIPELINE_SHAPES["users_kernel_pruned"][0]
    response, impulse, grad_out = (t.to(dtype) for t in make_inputs(shape, dtype))
    kept_run = emulated_fft_conv(response, impulse, grad_out, keep=True, nb_max=1)
    recomputed_run = emulated_fft_conv(response, impulse, grad_out)
    for kept, recomputed in zip(kept_run[:3], recomputed_run[:3]):
        assert torch.equal(kept, recomputed)
    try:
        from dense_conv import _extension
        ops = _extension.ops()
    except ImportError:
        pytest.skip("the CPU op needs the compiled extension")
    _, impulse_spectra, response_spectra = ops.dense_conv2d_fft_keep_spectra(response, impulse)
    for emulated, cpu in zip(kept_run[3], (impulse_spectra, response_spectra)):
        assert emulated.dtype == cpu.dtype and emulated.shape == cpu.shape
        torch.testing.assert_close(emulated, cpu, rtol=0, atol=1e-4 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("h_keep,H,W", [(1, 3, 4), (3, 8, 5), (4, 8, 6), (5, 9, 1), (9, 9, 10), (7, 20, 11)])
def test_fft_host_inverse_rows(h_keep, H, W):
    """Both branches of inverse_rows (pruned when 2 h_keep < H) are the unscaled inverse's first rows."""
    spec = torch.fft.rfft2(torch.randn(2, H, W, generator=torch.Generator().manual_seed(H), dtype=torch.float64))
    expected = torch.fft.irfft2(spec, s=(H, W))[:, :h_keep] * (H * W)
    torch.testing.assert_close(fft_host.inverse_rows(spec, h_keep, W), expected, rtol=0, atol=1e-12 * H * W)


# ---- octave_downsample (csrc/cuda/octave_downsample_kernels.cuh) ----

def packed_octave_reference(x, f, levels, dtype):
    """The reference levels packed along the last dim, as the kernels write them. The kernels store each level
    in the output's dtype and filter that stored level for the next one: the reference rounds each level to
    `dtype` before filtering it again (with the rounding's derivative taken as 1: the gradient kernels are
    the transposed filter chain), so that only the kernels' own arithmetic is left to compare."""
    packed, level = [], x
    for _ in range(levels):
        level = reference.octave_downsample_reference(level, f, 1)
        packed.append(level)
        level = level + (level.to(dtype).to(level.dtype) - level).detach()
    return torch.cat(packed, dim=-1)


def check_octave_kernels(x, f, levels, dtype, g):
    """Forward, grad_input and grad_filter kernels in `dtype` against float64 autograd of the reference, on
    the inputs rounded to dtype."""
    T = x.shape[-1]
    grad = torch.randn(x.shape[0], octave_packed_length(T, levels), generator=g, dtype=torch.float64)
    xd, fd, gd = x.to(dtype), f.to(dtype), grad.to(dtype)
    xr, fr = xd.double().requires_grad_(), fd.double().requires_grad_()
    packed = packed_octave_reference(xr, fr, levels, dtype)
    gx_ref, gf_ref = torch.autograd.grad(packed, (xr, fr), gd.double())
    out = harness.octave_forward(xd, fd, levels)
    check(out, packed.detach(), dtype)
    check(harness.octave_grad_input(gd, fd, T, levels), gx_ref, dtype)
    check(harness.octave_grad_filter(gd, xd, out, fd, levels), gf_ref, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + HALF_DTYPES, ids=DTYPE_ID.get)
@pytest.mark.parametrize("rows,T,taps,levels", [(1, 1, 1, 1), (2, 37, 7, 3), (3, 2500, 83, 2), (1, 2049, 83, 1),
                                                (2, 300, 301, 2)])
def test_octave_downsample_kernels(rows, T, taps, levels, dtype, schedule):
    g = torch.Generator().manual_seed(T + taps)
    x = torch.randn(rows, T, generator=g, dtype=torch.float64)
    f = torch.randn(taps, generator=g, dtype=torch.float64)
    if taps == 83:
        f[1::2] = 0.0  # exercise the zero-tap skip (half-band pattern)
    check_octave_kernels(x, f, levels, dtype, g)


# A long filter needs more than the default 48 KiB of dynamic shared memory per block (the staged window
# grows with the taps): the launches must opt in to more.
@pytest.mark.parametrize("dtype,taps", [(torch.float64, 2101), (torch.float32, 4801)], ids=["f64", "f32"])
def test_octave_downsample_long_filter(dtype, taps):
    rows, T, levels = 2, 60, 2
    g = torch.Generator().manual_seed(taps)
    x = torch.randn(rows, T, generator=g, dtype=torch.float64)
    f = torch.randn(taps, generator=g, dtype=torch.float64)
    check_octave_kernels(x, f, levels, dtype, g)


def test_octave_downsample_filter_too_long_for_shared_memory_is_a_clear_error():
    x, f = torch.randn(1, 8, dtype=torch.float64), torch.randn(30001, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"a filter of 30001 taps needs \d+ bytes of shared memory per block"):
        harness.octave_forward(x, f, 1)


# ---- grid limits: block counts are checked in 64 bits before they become a CUDA grid ----
# Null pointers: the check must raise before any launch touches memory.

NULL = ctypes.c_void_p(0)


# 2**32 + 1 blocks wrap to a 1-block grid if narrowed to 32 bits before the check.
@pytest.mark.parametrize("B", [2**31, 2**32 + 1])
def test_dense_grid_too_large_is_a_clear_error(B):
    # 1x1 images: one block per (b, i) for the forward and grad_impulse
    sizes = harness.conv_sizes(B, 1, 1, 1, 1, 1, 1)
    grid = rf"the launch needs a grid of {B} x 1 x 1 blocks, more than CUDA allows"
    with pytest.raises(RuntimeError, match=rf"dense_conv2d forward: {grid}"):
        harness.call("dc_emu_dense_forward", 0, NULL, NULL, NULL, sizes)
    with pytest.raises(RuntimeError, match=rf"dense_conv2d grad_impulse: {grid}"):
        harness.call("dc_emu_dense_grad_impulse", 0, NULL, NULL, NULL, sizes)


def test_octave_grid_too_large_is_a_clear_error():
    rows = 2**32 + 1
    with pytest.raises(RuntimeError, match=rf"octave_downsample: the launch needs a grid of {rows} x 1 x 1 blocks"):
        harness.call("dc_emu_octave_forward", 0, NULL, NULL, NULL, harness.octave_sizes(rows, 1, 3, 1))


def test_fft_grid_too_large_is_a_clear_error():
    # grid.y is the impulse channel count, at most 65535
    with pytest.raises(RuntimeError, match=r"the launch needs a grid of 1 x 65536 x 1 blocks"):
        harness.call("dc_emu_fft_product", 0, NULL, NULL, NULL, (ctypes.c_int64 * 4)(1, 65536, 1, 1))
