"""The CPU FFT algorithm's pruned transforms (csrc/cpu/fft_common.h forward_transposed / inverse_transposed):
dense_conv2d and dense_mix_conv2d against float64 definitions on the sizes where pruning has edge cases,
and grad_out read through its strides (expanded, transposed)."""
import pytest
import torch

import dense_conv
from dense_conv import _mix_fft  # noqa: F401  (registers the fake kernels and autograd)
from dense_conv._shapes import fft_size
from dense_conv.reference.conv import dense_shift_add
from testing import assert_close_scaled, make_inputs, shape_id

# (B, Ci, Cr, Hi, Wi, Hr, Wr) and what each exercises: H x W is the transform size (fft_size).
SHAPES = [
    (2, 2, 3, 6, 8, 1, 1),      # 1x1 kernel on a 2,3,5-smooth even image: no row or column is padding
    (1, 1, 1, 1, 1, 1, 1),      # 1 x 1 transform (W = 1: no Nyquist column)
    (1, 2, 2, 1, 9, 1, 4),      # one image row, one response row
    (2, 3, 2, 5, 7, 4, 1),      # one response column; odd H (8) and W rounded up to even
    (1, 2, 3, 4, 6, 9, 11),     # kernel larger than the image in both directions (taps cropped)
    (2, 1, 2, 9, 3, 3, 7),      # kernel wider than the image, taller image
    (1, 3, 2, 23, 29, 8, 2),    # prime image sizes: H = 30 (2*3*5), W = 30
    (2, 2, 3, 20, 70, 37, 16),  # the user's kernel: 37 of 56 rows hold response data
]


def _transform_size_id(shape):
    B, Ci, Cr, Hi, Wi, Hr, Wr = shape
    return shape_id(shape) + "_fft{}x{}".format(*fft_size(Hi, Wi, Hr, Wr))


def _grads(fn, inputs, grad_out):
    out = fn(*inputs)
    return out, torch.autograd.grad(out, inputs, grad_out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=_transform_size_id)
def test_dense_values_and_gradients(dtype, shape):
    response, impulse = make_inputs(shape, dtype=dtype, requires_grad=True)
    B, Ci, Cr, Hi, Wi = shape[:5]
    g = torch.randn(B, Ci * Cr, Hi, Wi, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out, grads = _grads(lambda r, i: dense_conv.dense_conv2d(r, i, algorithm="fft"), (response, impulse),
                        g.to(dtype))
    ref_out, ref_grads = _grads(dense_shift_add, (response.detach().double().requires_grad_(),
                                                  impulse.detach().double().requires_grad_()), g)
    assert_close_scaled(out, ref_out, dtype)
    for actual, expected in zip(grads, ref_grads):
        assert_close_scaled(actual, expected, dtype)


def _mix_reference(response, impulse, weight):
    B, Ci, Hi, Wi = impulse.shape
    dense = dense_shift_add(response, impulse).reshape(B, Ci, response.shape[1], Hi, Wi)
    return torch.einsum("ljk,bjkyx->blyx", weight, dense)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=_transform_size_id)
def test_mix_values_and_gradients(dtype, shape):
    """Also the weight gradient, whose Parseval weights depend on the bin's column (spectra stored transposed)."""
    response, impulse = make_inputs(shape, dtype=dtype, requires_grad=True)
    B, Ci, Cr, Hi, Wi = shape[:5]
    L = 3
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(L, Ci, Cr, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
    g = torch.randn(B, L, Hi, Wi, generator=gen, dtype=torch.float64)
    inputs = (response, impulse, weight)
    out, grads = _grads(lambda r, i, w: dense_conv.dense_mix_conv2d(r, i, w, algorithm="fft"), inputs, g.to(dtype))
    ref_out, ref_grads = _grads(_mix_reference, tuple(t.detach().double().requires_grad_() for t in inputs), g)
    assert_close_scaled(out, ref_out, dtype)
    for actual, expected in zip(grads, ref_grads):
        assert_close_scaled(actual, expected, dtype)


@pytest.mark.parametrize("kind", ["dense", "mix"])
@pytest.mark.parametrize("layout", ["expanded", "transposed"])
def test_strided_grad_out_gives_the_contiguous_gradients(kind, layout):
    """grad_out is read through its strides (never made contiguous): same gradients, bit for bit."""
    shape = (2, 2, 3, 9, 12, 4, 5)
    response, impulse = make_inputs(shape, dtype=torch.float32, requires_grad=True)
    B, Ci, Cr, Hi, Wi = shape[:5]
    if kind == "dense":
        inputs, C = (response, impulse), Ci * Cr
        out = dense_conv.dense_conv2d(response, impulse, algorithm="fft")
    else:
        inputs, C = (response, impulse, torch.randn(4, Ci, Cr, requires_grad=True)), 4
        out = dense_conv.dense_mix_conv2d(*inputs, algorithm="fft")
    if layout == "expanded":
        g = torch.randn(1, 1, 1, Wi).expand(B, C, Hi, Wi)
    else:
        g = torch.randn(B, C, Wi, Hi).transpose(2, 3)
    strided = torch.autograd.grad(out, inputs, g, retain_graph=True)
    contiguous = torch.autograd.grad(out, inputs, g.contiguous())
    for a, b in zip(strided, contiguous):
        assert torch.equal(a, b)
